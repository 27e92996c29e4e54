"""Single-flight: concurrent identical misses in one process make one upstream call.

The first caller of a key (the leader) runs the call; callers arriving while it
runs wait and receive its value or its exception. The leader keeps its flight
open until it has stored the value (`release`), so a caller arriving between the
end of the call and the store still joins it instead of calling again. A failed
call closes its flight at once: nothing was stored, the next caller retries.
A thread that began before a flight closed but reaches the table after it (its
look-up missed just before the leader stored) takes that flight's value too: for
`RECENT_S` seconds a closed flight's value is kept for callers that began earlier.
Different keys never wait on each other. In asyncio the shared call runs as its
own task, so a waiter that is cancelled -- the leader included -- does not cancel
it for the rest; a cancelled leader hands the finished value to ``orphaned`` (which
stores it, as the leader would have). A ``CancelledError`` the function raises
itself reaches every waiter as that very exception.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["AsyncFlights", "Flights"]

T = TypeVar("T")


class _Flight:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


RECENT_S = 2.0
"""How long a closed flight's value still answers callers that began before it closed."""
_RECENT_MAX = 64


class Flights:
    """Thread-based single-flight table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._closed: dict[str, tuple[float, Any]] = {}  # key -> (closed at, value)

    def run(
        self, key: str, call: Callable[[], T], since: float = math.inf
    ) -> tuple[T, object | None]:
        """``(value, flight)``: ``flight`` is set for the one caller that ran ``call``
        (the leader), who must `release` it once the value is stored. ``since``: when
        the caller began (``time.perf_counter()``); a flight closed after that answers
        it as if it had joined in time."""
        with self._lock:
            flight = self._flights.get(key)
            closed = self._closed.get(key) if flight is None else None
            if closed is not None and closed[0] > since:
                return closed[1], None
            if flight is None:
                flight = self._flights[key] = _Flight()
                leader = True
            else:
                leader = False
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value, None
        try:
            flight.value = call()
        except BaseException as exc:
            flight.error = exc
            self.release(key, flight)
            raise
        finally:
            flight.done.set()
        return flight.value, flight

    def release(self, key: str, flight: object) -> None:
        """Close the leader's flight (only if it is still the current one for ``key``);
        a value it stored answers callers that began before now, for `RECENT_S`."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
                now = time.perf_counter()
                self._closed = (
                    {k: v for k, v in self._closed.items() if now - v[0] < RECENT_S}
                    if len(self._closed) >= _RECENT_MAX
                    else self._closed
                )
                assert isinstance(flight, _Flight)
                if flight.error is None and len(self._closed) < _RECENT_MAX:
                    self._closed[key] = (now, flight.value)


_Result = tuple[Any, asyncio.CancelledError | None]


async def _guarded(call: Callable[[], Awaitable[T]]) -> _Result:
    """``(value, None)``, or ``(None, error)`` for a ``CancelledError`` the call raised
    itself: carried as a value, or the task would end cancelled and every waiter would
    get a new ``CancelledError`` instead of the function's own."""
    try:
        return await call(), None
    except asyncio.CancelledError as exc:
        return None, exc


class AsyncFlights(Generic[T]):
    """asyncio single-flight table, per event loop."""

    def __init__(self) -> None:
        self._tasks: dict[tuple[int, str], asyncio.Future[_Result]] = {}
        self._orphans: set[asyncio.Future[Any]] = set()  # stores of cancelled leaders

    async def run(
        self,
        key: str,
        call: Callable[[], Awaitable[T]],
        orphaned: Callable[[T], Awaitable[None]] | None = None,
    ) -> tuple[T, object | None]:
        """``(value, flight)``, as `Flights.run`. When the leader is cancelled while
        the call runs on, ``orphaned(value)`` is awaited once it has finished well (in
        a task of its own) and the flight is closed after it."""
        slot = (id(asyncio.get_running_loop()), key)
        task = self._tasks.get(slot)
        leader = task is None
        if task is None:
            task = asyncio.ensure_future(_guarded(call))
            self._tasks[slot] = task
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
        try:
            value, raised = await asyncio.shield(task)
        except BaseException:
            if leader:  # the leader will not store: the call's end hands its value on
                if task.done():  # cancelled just as the call ended, or the call failed
                    self._adopt(slot, task, orphaned)
                else:  # cancelled while the call runs; late callers still join it
                    task.add_done_callback(lambda _: self._adopt(slot, task, orphaned))
            raise
        if raised is not None:
            if leader:
                self._drop(slot, task)
            raise raised
        return value, (slot, task) if leader else None

    def _adopt(
        self,
        slot: tuple[int, str],
        task: asyncio.Future[_Result],
        orphaned: Callable[[T], Awaitable[None]] | None,
    ) -> None:
        """The call of a cancelled leader is over: hand a value to ``orphaned``."""
        if orphaned is None or task.cancelled() or task.exception() is not None:
            self._drop(slot, task)
            return
        value, raised = task.result()
        if raised is not None:
            self._drop(slot, task)
            return
        job = asyncio.ensure_future(orphaned(value))
        self._orphans.add(job)  # a reference, or the task may vanish mid-flight

        def finished(_: object) -> None:
            self._orphans.discard(job)
            self._drop(slot, task)
            job.cancelled() or job.exception()  # retrieved: a store reports its own errors

        job.add_done_callback(finished)

    def release(self, key: str, flight: object) -> None:
        slot, task = typing.cast("tuple[tuple[int, str], asyncio.Future[_Result]]", flight)
        self._drop(slot, task)

    def _drop(self, slot: tuple[int, str], task: asyncio.Future[_Result]) -> None:
        if self._tasks.get(slot) is task:
            del self._tasks[slot]
