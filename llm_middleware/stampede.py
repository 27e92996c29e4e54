"""One upstream call per burst: single-flight in this process, and (opt-in) a
short-lived lock in the shared tier across processes.

`Upstream` is the op the call flow yields on a miss: the first caller of a key in
this process runs `leader_flow` (which may take the cross-process lock and wait
for another process's answer); concurrent callers of the same key wait for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._io import Call, Flow, Op, Sleep, Tier, TierOp, run_async, run_sync
from .chain import CallContext
from .codec import Codec
from .errors import ConfigurationError
from .singleflight import AsyncFlights, Flights
from .tiers import Hit, MultiLevelCache

__all__ = ["Outcome", "StampedeLock", "Upstream", "leader_flow"]


@dataclass(frozen=True)
class StampedeLock:
    """Cross-process stampede protection (``lock=True`` or ``lock=StampedeLock(...)``).

    The first process to miss takes a lock in the shared tier (an atomic ``add``);
    the others poll that tier every ``poll`` seconds for its answer, for at most
    ``wait`` seconds, then call the function themselves. A holder whose call fails
    (or whose answer cannot be stored) lets the lock go at once: the next poll of
    one waiter takes it over and calls, the others wait for that one. A lock whose
    holder died expires after ``ttl`` seconds.
    """

    ttl: float = 30.0
    wait: float = 10.0
    poll: float = 0.05

    def __post_init__(self) -> None:
        if not (self.ttl > 0 and self.wait >= 0 and self.poll > 0):
            raise ConfigurationError("StampedeLock needs ttl > 0, wait >= 0 and poll > 0 seconds")


class Outcome(NamedTuple):
    """What the leader's call produced: a value, or a hit another process stored
    while we waited on its lock; and the cross-process lock to release."""

    value: Any
    ms: float
    hit: Hit | None = None
    lock: tuple[Tier, str] | None = None


def leader_flow(
    ctx: CallContext,
    cache: MultiLevelCache,
    codec: Codec,
    call: Callable[[], Any],
    lock: StampedeLock | None,
) -> Flow[Outcome]:
    """Call the function, first taking the cross-process lock when one is asked for."""
    held = None
    tier = cache.lock_tier(ctx.depth) if lock is not None and ctx.key is not None else None
    if tier is not None and lock is not None and ctx.key is not None:
        lock_key = ctx.key + ":lock"
        try:
            acquired = bool((yield TierOp(tier, "add", lock_key, b"1", lock.ttl)))
        except Exception as exc:  # cannot coordinate: just call
            cache.report_error(ctx.trace, tier, exc, "lock")
            acquired = True
        else:
            held = (tier, lock_key) if acquired else None
        ctx.trace.debug("cache.lock", tier=tier.name, acquired=acquired)
        if not acquired:
            waited = yield from _wait_for_holder(ctx, cache, codec, tier, lock_key, lock)
            if isinstance(waited, Outcome):
                return waited
            held = waited
    try:
        value, ms = yield Call(call)
    except BaseException:
        if held is not None:
            yield from cache.unlock(held, ctx.trace)
        raise
    return Outcome(value, ms, None, held)


def _wait_for_holder(
    ctx: CallContext,
    cache: MultiLevelCache,
    codec: Codec,
    tier: Tier,
    lock_key: str,
    lock: StampedeLock,
) -> Flow[Outcome | tuple[Tier, str] | None]:
    """Wait for the process holding the lock to store its answer: the answer as an
    `Outcome`; or, when the holder let the lock go without one (its call failed, or
    its answer could not be stored), the lock, taken over by this waiter (another
    waiter taking it over first is waited for in turn); or ``None`` when ``wait``
    ran out (the caller then calls, without the lock)."""
    assert ctx.key is not None
    # under refresh(), only an answer stored after this call began will do
    since = -math.inf if ctx.read else cache.timer()
    deadline = time.monotonic() + lock.wait
    while time.monotonic() < deadline:
        yield Sleep(lock.poll)
        hit = yield from cache.lookup(ctx.key, codec, ctx.trace, start=tier.index)
        if hit is not None and hit.envelope.created >= since:
            return Outcome(hit.envelope.value, 0.0, hit)
        try:  # the lock gone without an answer: take it over (one waiter does)
            taken = bool((yield TierOp(tier, "add", lock_key, b"1", lock.ttl)))
        except Exception as exc:
            cache.report_error(ctx.trace, tier, exc, "lock")
            continue
        if not taken:
            continue
        # the holder may have stored its answer just before letting the lock go
        hit = yield from cache.lookup(ctx.key, codec, ctx.trace, start=tier.index)
        if hit is not None and hit.envelope.created >= since:
            yield from cache.unlock((tier, lock_key), ctx.trace)
            return Outcome(hit.envelope.value, 0.0, hit)
        ctx.trace.debug("cache.lock", tier=tier.name, acquired=True, taken_over=True)
        return tier, lock_key
    ctx.trace.warning("cache.lock", tier=tier.name, acquired=False, waited=lock.wait)
    return None


class Upstream(Op):
    """Run the leader flow, once per key across concurrent identical misses in this
    process; the result is ``(outcome, leader)``. The leader must `release` once the
    value is stored, so late arrivals join the finished call."""

    __slots__ = ("flight", "flights", "key", "leader", "orphan", "since")

    def __init__(
        self,
        leader: Callable[[], Flow[Outcome]],
        key: str | None,
        flights: Flights | AsyncFlights[Any],
        orphan: Callable[[Outcome], Flow[Any]] | None = None,
        since: float = math.inf,
    ) -> None:
        self.since = since  # when the call began: a flight closed after it still answers
        self.leader = leader
        self.key = key
        self.flights = flights
        self.flight: object | None = None
        self.orphan = orphan  # what finishes the call when its async leader is cancelled

    def run(self) -> tuple[Outcome, bool]:
        if self.key is None:
            return run_sync(self.leader()), True
        assert isinstance(self.flights, Flights)
        outcome, self.flight = self.flights.run(
            self.key, lambda: run_sync(self.leader()), self.since
        )
        return outcome, self.flight is not None

    async def arun(self) -> tuple[Outcome, bool]:
        if self.key is None:
            return await run_async(self.leader()), True
        assert isinstance(self.flights, AsyncFlights)
        orphan = self.orphan
        orphaned = None if orphan is None else lambda outcome: run_async(orphan(outcome))
        outcome, self.flight = await self.flights.run(
            self.key, lambda: run_async(self.leader()), orphaned
        )
        return outcome, self.flight is not None

    def release(self) -> None:
        """Close the leader's flight (no-op for followers and uncached calls)."""
        if self.flight is not None and self.key is not None:
            self.flights.release(self.key, self.flight)
            self.flight = None
