"""A hit, reported once: and tier 1 answered inline, before the flow.

Two functions make a hit, whichever way a call comes:

- `MultiLevelCache.entry` (``tiers``) decides that bytes read from a tier are an
  answer;
- `report_hit` counts it and writes its ``cache.result`` event.

The flow's lookup (``flow``, ``tiers``) uses both for every tier. `answer_inline`
uses both too, for the one read that a hit in tier 1 costs (in sync code, or an
in-process tier 1 in async code): the decorator tries it first -- for a remembered
decision (``memo``) before the steps, otherwise right after them -- and takes the
flow only when it finds no answer.
It is the lookup of tier 1, done without the flow's generators: what it read is
handled as the lookup handles it (a failing read or an invalid entry reported,
the invalid entry deleted), and the flow that follows looks up from tier 2 -- so
tier 1 is read once per call and an entry decoded at most once. Only an absent
entry sends the flow back to tier 1: after the steps have run, an answer stored
meanwhile by a concurrent identical call is then found, not called again.
"""

from __future__ import annotations

from typing import Any

from ._io import run_sync
from .codec import Codec, InvalidEntry
from .contract import NO_VALUE, NoValueType
from .tiers import MultiLevelCache
from .trace import Trace

__all__ = ["answer_inline", "inline_tier", "report_hit"]


def report_hit(
    trace: Trace,
    tier: str,
    policy: str | None,
    started: float,
    saved_ms: float,
    saved_tokens: int,
    *,
    stale: bool = False,
) -> None:
    """Count a hit in ``tier`` and write its closing ``cache.result`` event (INFO).
    ``started``: the call's ``time.perf_counter()`` at its start; ``saved_ms`` and
    ``saved_tokens``: what the answered call had cost."""
    trace.stats.hit(tier, saved_ms, saved_tokens)
    if stale:
        trace.result("hit", tier, policy, started, saved_ms, saved_tokens, stale=True)
    else:
        trace.result("hit", tier, policy, started, saved_ms, saved_tokens)


def inline_tier(cache: MultiLevelCache, trace: Trace, *, may_block: bool) -> bool:
    """Whether `answer_inline` may read ``cache``'s tier 1 for this call: in sync code
    (``may_block``) any tier, in async code an in-process one (``nonblocking``, read
    without waiting); and no debug events wanted (the flow's lookup writes those)."""
    return (may_block or cache.tiers[0].inline) and not trace.out.debug


def answer_inline(
    cache: MultiLevelCache, key: str, policy: str, codec: Codec, trace: Trace, started: float
) -> tuple[Any | NoValueType, int]:
    """``(answer, 0)``: the answer stored in ``cache``'s tier 1 under ``key``,
    reported as a hit; else ``(NO_VALUE, start)``, where ``start`` is the tier the
    flow's lookup starts from: 0 when tier 1 held nothing, else 1 (the read failed,
    or the entry was invalid -- both reported, the entry deleted -- or expired).
    Check `inline_tier` first."""
    tier = cache.tiers[0]
    try:
        data = tier.backend.get(key)
    except Exception as exc:
        cache.report_error(trace, tier, exc, "backend")
        return NO_VALUE, 1
    if data is None:
        return NO_VALUE, 0
    try:
        envelope = cache.entry(key, data, codec, cache.timer())
    except InvalidEntry as exc:
        run_sync(cache.discard(tier, key, exc, trace))  # blocks only where it may
        return NO_VALUE, 1
    if envelope is None:
        return NO_VALUE, 1
    report_hit(trace, tier.name, policy, started, envelope.duration_ms, envelope.saved_tokens)
    return envelope.value, 0
