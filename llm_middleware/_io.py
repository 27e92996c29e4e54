"""The I/O protocol: flows are generators that yield operations; drivers run them.

A flow (lookup, store, a whole cached call) is written once, free of I/O, as a
generator that yields `Op` s and receives their results (or has their exceptions
thrown into it). `run_sync` performs each op by blocking; `run_async` awaits it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from .codec import inflate_limit
from .contract import Backend

__all__ = ["Call", "Carried", "Flow", "Op", "Sleep", "TierOp", "run_async", "run_sync", "unwrap"]

T = TypeVar("T")


class Op:
    """One operation a flow asks its driver to perform."""

    __slots__ = ()

    def run(self) -> Any:
        raise NotImplementedError

    async def arun(self) -> Any:
        raise NotImplementedError


Flow = Generator[Op, Any, T]


class Tier:
    """A backend as the cache sees it: a name, its limits and its sync/async calls."""

    __slots__ = (
        "aadd",
        "adelete",
        "aget",
        "aset",
        "backend",
        "index",
        "inflate_limit",
        "inline",
        "max_value_bytes",
        "name",
    )

    def __init__(self, name: str, backend: Backend, index: int = 0) -> None:
        self.name = name
        self.backend = backend
        self.index = index
        self.max_value_bytes: int | None = getattr(backend, "max_value_bytes", None)
        # how far an entry read here may inflate (the backend's ``max_inflated_bytes``,
        # else a multiple of its ``max_value_bytes``): past it, a ``too_large`` miss
        self.inflate_limit = inflate_limit(
            self.max_value_bytes, getattr(backend, "max_inflated_bytes", None)
        )
        self.inline = getattr(backend, "nonblocking", False) is True
        self.aget: Callable[[str], Awaitable[bytes | None]] = _async_twin(backend, "get")
        self.aset: Callable[[str, bytes, float], Awaitable[None]] = _async_twin(backend, "set")
        self.adelete: Callable[[str], Awaitable[None]] = _async_twin(backend, "delete")
        self.aadd: Callable[[str, bytes, float], Awaitable[bool]] | None = (
            _async_twin(backend, "add") if hasattr(backend, "add") else None
        )


def _async_twin(backend: Backend, name: str) -> Any:
    twin = getattr(backend, "a" + name, None)
    if twin is not None:
        return twin
    sync = getattr(backend, name)

    async def in_thread(*args: Any) -> Any:
        return await asyncio.to_thread(sync, *args)

    return in_thread


class TierOp(Op):
    """``get``/``set``/``delete`` (or ``add``, where the backend has it) on one tier."""

    __slots__ = ("args", "method", "tier")

    def __init__(self, tier: Tier, method: str, *args: Any) -> None:
        self.tier = tier
        self.method = method
        self.args = args

    def run(self) -> Any:
        return getattr(self.tier.backend, self.method)(*self.args)

    async def arun(self) -> Any:
        return await getattr(self.tier, "a" + self.method)(*self.args)


class Call(Op):
    """Run the wrapped function; the result is ``(value, duration_ms)``."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call

    def run(self) -> tuple[Any, float]:
        start = time.perf_counter()
        value = self.call()
        return value, (time.perf_counter() - start) * 1000

    async def arun(self) -> tuple[Any, float]:
        start = time.perf_counter()
        value = await self.call()
        return value, (time.perf_counter() - start) * 1000


class Sleep(Op):
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self) -> None:
        time.sleep(self.seconds)

    async def arun(self) -> None:
        await asyncio.sleep(self.seconds)


class Carried(Exception):
    """An op's `StopIteration` on its way through a flow. Thrown into a generator as
    itself, it would leave it as ``RuntimeError("generator raised StopIteration")``
    (PEP 479); the drivers carry it in this wrapper and raise the original, unchanged,
    to the caller. Flows that report an error name the original (`unwrap`)."""

    __slots__ = ("original",)

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


def unwrap(exc: BaseException) -> BaseException:
    """The exception an op raised, out of its `Carried` wrapper if it has one."""
    return exc.original if isinstance(exc, Carried) else exc


def run_sync(flow: Flow[T]) -> T:
    """Drive ``flow`` to its end, performing each op by blocking."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except Carried as carried:
            original = carried.original
            break
        result = error = None
        try:
            result = op.run()
        except StopIteration as exc:
            error = Carried(exc)
        except BaseException as exc:  # thrown back into the flow, which decides
            error = exc
    raise original  # outside the handler: the original's __context__ stays its own


async def run_async(flow: Flow[T]) -> T:
    """Drive ``flow`` to its end, awaiting each op."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except Carried as carried:
            original = carried.original
            break
        result = error = None
        try:
            result = await op.arun()
        except StopIteration as exc:
            error = Carried(exc)
        except BaseException as exc:
            error = exc
    raise original
