"""``with observe() as seen: ...``: where each cached call's answer came from, per call,
without reading logs.

The block is a context variable: calls made in it -- in this thread, or in asyncio
tasks created in it (which copy the context) -- are recorded in ``seen.calls`` in the
order they started; calls in other threads or other tasks are not. ``seen``'s own
fields are the first call's: with nested calls (a cached function calling another),
the outermost's. Nested ``observe()`` blocks each record the calls made inside them.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import listeners

__all__ = ["CallRecord", "Seen", "observe"]


@dataclass(frozen=True)
class CallRecord:
    """Where one call's answer came from."""

    function: str
    """The decorated function, ``module.qualname``."""
    outcome: str
    """``hit`` (a stored answer), ``miss`` (the function ran and its answer was
    stored) or ``bypass`` (the function ran, nothing stored or read)."""
    tier: str | None
    """The tier that answered a hit (``L1``, ``L2``, ..., ``inflight``); else None."""
    policy: str | None
    """The policy chosen (``short``, ``medium``, ``long``, ``never``), if one was."""
    similarity: float | None
    """How close the stored question was to this one: 1.0 for an exact hit; None
    unless a hit."""
    saved_ms: float
    """What the answered call had taken (0 unless a hit): the time a hit saved."""
    saved_tokens: int
    """The tokens the answered call had used (0 unless a hit)."""
    duration_ms: float
    """How long this call took."""
    started: float = field(repr=False, compare=False)


class Seen:
    """The calls an ``observe()`` block saw; its fields are those of the first (the
    outermost), or None (0 for the numbers) when no cached call was made."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self._lock = threading.Lock()

    def _first(self) -> CallRecord | None:
        return self.calls[0] if self.calls else None

    @property
    def outcome(self) -> str | None:
        first = self._first()
        return None if first is None else first.outcome

    @property
    def tier(self) -> str | None:
        first = self._first()
        return None if first is None else first.tier

    @property
    def policy(self) -> str | None:
        first = self._first()
        return None if first is None else first.policy

    @property
    def similarity(self) -> float | None:
        first = self._first()
        return None if first is None else first.similarity

    @property
    def saved_ms(self) -> float:
        first = self._first()
        return 0.0 if first is None else first.saved_ms

    @property
    def hit(self) -> bool:
        """Whether the (first) call was answered from the cache."""
        return self.outcome == "hit"

    def __repr__(self) -> str:
        return f"Seen(outcome={self.outcome!r}, tier={self.tier!r}, calls={len(self.calls)})"


_open: contextvars.ContextVar[tuple[Seen, ...]] = contextvars.ContextVar(
    "llm_middleware_observe", default=()
)
_lock = threading.Lock()
_blocks = 0


def _record(end: listeners.CallEnd) -> None:
    watching = _open.get()
    if not watching:
        return
    similarity = end.extra.get("similarity")
    if similarity is None and end.outcome == "hit":
        similarity = 1.0
    record = CallRecord(
        function=end.fn,
        outcome=end.outcome,
        tier=end.tier,
        policy=end.policy,
        similarity=similarity,
        saved_ms=end.saved_ms,
        saved_tokens=end.saved_tokens,
        duration_ms=(end.ended - end.started) * 1000.0,
        started=end.started,
    )
    for seen in watching:
        with seen._lock:  # tasks in threads (asyncio.to_thread) share the block
            calls = seen.calls
            at = len(calls)  # nested calls end before the calls around them
            while at and calls[at - 1].started > record.started:
                at -= 1
            calls.insert(at, record)


@contextmanager
def observe() -> Iterator[Seen]:
    """Record where the answers of the cached calls made in the block came from::

        with observe() as seen:
            answer = chat("Explain the CAP theorem")
        if seen.hit:
            label = f"cached ({seen.tier}, saved {seen.saved_ms:.0f} ms)"

    Calls that raise are not recorded (nothing was answered)."""
    global _blocks
    seen = Seen()
    with _lock:
        _blocks += 1
        if _blocks == 1:
            listeners.add(_record)
    token = _open.set((*_open.get(), seen))
    try:
        yield seen
    finally:
        _open.reset(token)
        with _lock:
            _blocks -= 1
            if _blocks == 0:
                listeners.remove(_record)
