"""A hit, reported once; and tier 1 read inline, before the flow.

Two functions make a hit, whichever way a call comes:

- `MultiLevelCache.entry` (``tiers``) decides that bytes read from a tier are an
  answer;
- `report_hit` counts it and writes its ``cache.result`` event.

The flow's lookup (``flow``, ``tiers``) uses both for every tier. So does the read of
tier 1 that a hit costs (in sync code any tier 1, in async code an in-process one):
`read_first` reads and judges it, and the caller (``cached``) reports an answer with
`report_hit`, or hands what was found to `settle`. The decorator tries it first -- for
a remembered decision (``memo``) before the steps, otherwise right after them -- and
takes the flow only when it finds no answer.

It is the lookup of tier 1, done without the flow's generators: what it read is
handled as the lookup handles it (a failing read or an invalid entry reported, the
invalid entry deleted), and the flow that follows looks up from tier 2 -- so tier 1
is read once per call and an entry decoded at most once. Only what the inline read
cannot settle sends the flow to tier 1: a key whose generation is due to be read
again, or an entry sealed under an older encryption key (the flow seals it anew).
A concurrent identical call whose answer is stored meanwhile is still not called
again: in this process single-flight hands its answer over, across processes the
stampede lock (``lock=True``) looks the tiers up again once it holds the lock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from . import listeners
from ._io import run_sync
from .codec import Codec, Envelope, InvalidEntry
from .tiers import MultiLevelCache
from .trace import Counters, Output, Trace

__all__ = ["inline_tier", "read_first", "report_hit", "settle"]


def report_hit(
    counters: Counters,
    trace: Trace | None,
    tier: str,
    policy: str | None,
    started: float,
    saved_ms: float,
    saved_tokens: int,
    value: Any = None,
    arguments: Mapping[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Count a hit in ``tier``; tell the listeners (``observe()``, OpenTelemetry) and
    write the closing ``cache.result`` event to ``trace`` (``None``: neither is wanted,
    so nothing is built). ``started``: the call's ``time.perf_counter()`` at its start;
    ``saved_ms`` and ``saved_tokens``: what the answered call had cost; ``value`` and
    ``arguments``: the answer and the call's arguments by name, for the listeners;
    ``extra``: more result fields (``stale``, ``similarity``)."""
    counters.hit(tier, saved_ms, saved_tokens, policy)
    if trace is None:
        return
    if listeners.ACTIVE:
        listeners.notify(listeners.CallEnd(trace.fn, trace.key, "hit", tier, policy, started,
                                           time.perf_counter(), saved_ms, saved_tokens,
                                           extra or {}, value, arguments or {}))  # fmt: skip
    trace.result("hit", tier, policy, started, saved_ms, saved_tokens, extra)


def inline_tier(cache: MultiLevelCache, out: Output, may_block: bool) -> bool:
    """Whether `read_first` may read ``cache``'s tier 1 for a call whose events go
    to ``out``: in sync code (``may_block``) any tier, in async code an in-process one
    (``nonblocking``, read without waiting); and no debug events wanted (the flow's
    lookup writes those)."""
    return (may_block or cache.tiers[0].inline) and not out.debug


def read_first(cache: MultiLevelCache, key: str, codec: Codec) -> Envelope | int | Exception:
    """Tier 1's answer for the (logical) ``key``: its `Envelope` when it is one (report
    it with `report_hit`); else what `settle` needs -- ``1`` when tier 1 holds no
    answer (nothing, or an expired entry), ``0`` when the flow must read tier 1 itself
    (the key's generation is due to be read again, or the entry is sealed under an
    older encryption key, which the flow seals anew), or the exception its read raised
    or the `InvalidEntry` it holds. Check `inline_tier` first."""
    now = cache.timer()
    physical = cache.generations.known(key, now)
    if physical is None:  # a generation to read again: the flow's lookup reads it
        return 0
    try:
        data = cache.tiers[0].backend.get(physical)
    except Exception as exc:
        return exc
    if data is None:
        return 1
    try:
        found = cache.entry(0, physical, data, codec, now)
    except InvalidEntry as exc:
        return exc
    if found is None:
        return 1
    envelope, _, stale_key, _ = found
    return 0 if stale_key else envelope


def settle(cache: MultiLevelCache, key: str, found: int | Exception, trace: Trace) -> int:
    """Handle what `read_first` found that is not an answer, as the lookup would: a
    failing read reported, an invalid entry reported and deleted. Returns the tier the
    flow's lookup starts from: tier 2, unless the flow must read tier 1 itself."""
    if isinstance(found, int):
        return found
    tier = cache.tiers[0]
    if isinstance(found, InvalidEntry):
        physical = cache.generations.known(key) or key  # known: read_first just used it
        run_sync(cache.discard(tier, physical, found, trace))  # blocks only where it may
    else:
        cache.report_error(trace, tier, found, "backend")
    return 1
