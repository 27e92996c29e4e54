"""Single-flight: concurrent identical misses in one process make one upstream call.

The first caller of a key (the leader) runs the call; callers arriving while it
runs wait and receive its value or its exception. The leader keeps its flight
open until it has stored the value (`release`), so a caller arriving between the
end of the call and the store still joins it instead of calling again. A failed
call closes its flight at once: nothing was stored, the next caller retries.
Different keys never wait on each other. In asyncio the shared call runs as its
own task, so a waiter that is cancelled -- the leader included -- does not cancel
it for the rest.
"""

from __future__ import annotations

import asyncio
import threading
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


class Flights:
    """Thread-based single-flight table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def run(self, key: str, call: Callable[[], T]) -> tuple[T, object | None]:
        """``(value, flight)``: ``flight`` is set for the one caller that ran ``call``
        (the leader), who must `release` it once the value is stored."""
        with self._lock:
            flight = self._flights.get(key)
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
        """Close the leader's flight (only if it is still the current one for ``key``)."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]


class AsyncFlights(Generic[T]):
    """asyncio single-flight table, per event loop."""

    def __init__(self) -> None:
        self._tasks: dict[tuple[int, str], asyncio.Future[T]] = {}

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, object | None]:
        """``(value, flight)``, as `Flights.run`."""
        slot = (id(asyncio.get_running_loop()), key)
        task = self._tasks.get(slot)
        leader = task is None
        if task is None:
            task = asyncio.ensure_future(call())
            self._tasks[slot] = task
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
        try:
            value = await asyncio.shield(task)
        except BaseException:
            if leader:  # nothing will be stored: close the flight once the call is over
                if task.done():
                    self._drop(slot, task)
                else:  # the leader was cancelled; late callers still join the call
                    task.add_done_callback(lambda _: self._drop(slot, task))
            raise
        return value, (slot, task) if leader else None

    def release(self, key: str, flight: object) -> None:
        slot, task = typing.cast("tuple[tuple[int, str], asyncio.Future[T]]", flight)
        self._drop(slot, task)

    def _drop(self, slot: tuple[int, str], task: asyncio.Future[T]) -> None:
        if self._tasks.get(slot) is task:
            del self._tasks[slot]
