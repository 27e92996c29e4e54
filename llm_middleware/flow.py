"""The I/O of one call, written once: lookup → (lock) → call → promote/store.

`cached_call` is a generator of operations (see ``_io``); the sync driver runs
it by blocking, the async driver by awaiting. The steps of ``chain`` have
already decided everything it needs (policy, key, namespace, controls).
"""

from __future__ import annotations

import collections.abc
import copy
import enum
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from . import listeners
from ._io import Call, Flow, run_async, run_sync, unwrap
from .chain import DEGRADED, CallContext
from .codec import Codec, UnsupportedValue
from .hits import report_hit
from .revalidate import Revalidate, Revalidations
from .singleflight import AsyncFlights, Flights
from .stampede import Outcome, StampedeLock, Upstream, leader_flow
from .tiers import Hit, MultiLevelCache
from .trace import Trace

if TYPE_CHECKING:
    from .semantic.level import Probe, SemanticHook

__all__ = ["Commit", "FlowOptions", "ResultAdapter", "StampedeLock", "cached_call", "end_call"]


def refresh_flow(
    ctx: CallContext,
    cache: MultiLevelCache,
    codec: Codec,
    call: Callable[[], Any],
    stale_ttl: float,
) -> Flow[None]:
    """Replace a stale entry; a failure keeps the stale one and logs ``cache.error``."""
    try:
        value, ms = yield Call(call)
    except Exception as exc:
        error = unwrap(exc)
        ctx.trace.warning("cache.error", tier=None, error=f"{type(error).__name__}: {error}",
                          reason="revalidate")  # fmt: skip
        return
    yield from store_value(ctx, cache, codec, value, ms, stale_ttl)


class Commit:
    """Stores an answer that is complete only later, e.g. a stream's recording once
    the stream has finished normally. ``commit(value, ms)`` from sync code,
    ``await commit.acall(value, ms)`` from async code."""

    __slots__ = ("cache", "codec", "ctx")

    def __init__(self, ctx: CallContext, cache: MultiLevelCache, codec: Codec) -> None:
        self.ctx, self.cache, self.codec = ctx, cache, codec

    def __call__(self, value: Any, ms: float) -> None:
        run_sync(store_value(self.ctx, self.cache, self.codec, value, ms))

    async def acall(self, value: Any, ms: float) -> None:
        await run_async(store_value(self.ctx, self.cache, self.codec, value, ms))


class ResultAdapter(Protocol):
    """Lets an integration shape results around the cache (the OpenAI streams)."""

    accepts: frozenset[str] | None
    """The codec type tags of the entries its callers can be answered with (``None``:
    any); an entry of another type is a miss (`Codec`'s ``accepts``)."""

    def shareable(self, ctx: CallContext) -> bool:
        """May concurrent identical calls share one upstream call's result?"""

    def on_hit(self, value: Any) -> Any:
        """What the caller receives for a stored ``value``."""

    def on_miss(self, value: Any, commit: Commit) -> tuple[Any, bool]:
        """``(what the caller receives, store value now?)``; when not stored now, the
        adapter calls ``commit`` later with the value to store."""


@dataclass(frozen=True)
class FlowOptions:
    """What one decorated function gives every call's flow: how its answers are encoded
    (``codec``), its background refreshes (``revalidations``, shared by its calls), and
    the choices it was decorated with."""

    codec: Codec = field(default_factory=Codec)
    revalidations: Revalidations = field(default_factory=Revalidations)
    adapter: ResultAdapter | None = None
    lock: StampedeLock | None = None
    stale_ttl: float = 0.0
    semantic: SemanticHook | None = None


def cached_call(
    ctx: CallContext,
    cache: MultiLevelCache,
    call: Callable[[], Any] | Callable[[], Awaitable[Any]],
    flights: Flights | AsyncFlights[Any],
    options: FlowOptions,
    started: float | None = None,
    *,
    private: bool = False,
    start: int = 0,
) -> Flow[Any]:
    """The I/O of one call, after the steps decided: lookup → call → store.
    ``started``: the call's ``time.perf_counter()`` at its start; ``start``: the first
    tier to look up (the tiers above it were looked up already, without an answer:
    see ``hits.read_first``). ``call`` runs on
    arguments snapshotted when the key was made (see ``_snapshot``); ``private``: they
    could not be, so the call is neither shared with concurrent callers nor refreshed
    in the background (either would run later, on arguments that may have changed)."""
    trace = ctx.trace
    if started is None:
        started = time.perf_counter()
    codec, adapter = options.codec, options.adapter
    if ctx.policy is not None and trace.wants(logging.DEBUG):
        trace.debug("cache.policy", policy=ctx.policy.value, ttl=ctx.ttl, rule=ctx.rule)
    if ctx.skip is not None:
        level = logging.WARNING if ctx.skip in DEGRADED else logging.INFO
        detail = {"error": ctx.skip_error} if ctx.skip_error else {}
        trace.emit(level, "cache.bypass", reason=ctx.skip, **detail)
        trace.stats.bypass(ctx.skip, policy=None if ctx.policy is None else ctx.policy.value)
        value, ms = yield Call(call)
        trace.debug("cache.call", duration_ms=round(ms, 3))
        end_call(trace, "bypass", None, ctx, started, 0.0, 0, value=value)
        return value
    assert ctx.key is not None and ctx.policy is not None
    shared = not private and (adapter is None or adapter.shareable(ctx))
    # a stream is never served stale: its refresh would be a stream nobody reads
    grace = options.stale_ttl if shared else 0.0
    if ctx.read:
        hit = yield from cache.lookup(ctx.key, codec, trace, grace=grace, start=start)
        if hit is not None:
            if hit.stale:
                yield Revalidate(
                    options.revalidations,
                    ctx.key,
                    lambda: refresh_flow(ctx, cache, codec, call, options.stale_ttl),
                )
            return _answer_hit(ctx, hit, started, adapter)
    probe: Probe | None = None
    if options.semantic is not None:  # the fuzzy levels, when opted in
        probe = yield from options.semantic.find(ctx, cache, codec, search=ctx.read)
        held = probe is None or probe.match.shadow or probe.verify is not None
        found = None if held or probe is None else probe.candidate
        if found is not None:
            yield from options.semantic.serve(ctx, cache, codec, found)
            fuzzy = Hit(found.hit.envelope, found.level, False)
            return _answer_hit(ctx, fuzzy, started, adapter, similarity=round(found.similarity, 4))
    if not ctx.read:
        trace.info("cache.bypass", reason="refresh")
    upstream = Upstream(
        lambda: leader_flow(ctx, cache, codec, call, options.lock),
        ctx.key if shared else None,
        flights,
        lambda outcome: _finish(ctx, cache, codec, outcome, options, probe),
        started,
    )
    outcome, leader = yield upstream
    try:
        if outcome.hit is not None:  # another process answered while we waited
            answer = _answer_hit(ctx, outcome.hit, started, adapter)
            return answer if leader else _own_copy(answer)
        value, ms = outcome.value, outcome.ms
        trace.debug("cache.call", duration_ms=round(ms, 3))
        if not leader:  # another caller's in-flight call answered this one
            own = _own_copy(value)
            if own is not _ONE_SHOT:
                report_hit(trace.stats, trace, "inflight", ctx.policy.value, started, ms, 0,
                           value=own, arguments=ctx.arguments)  # fmt: skip
                return own
            # a one-shot result (an iterator, a stream) is its caller's alone: this
            # caller makes its own call, whose result is not stored (as the leader's)
            value, ms = yield Call(call)
            trace.debug("cache.call", duration_ms=round(ms, 3))
            trace.stats.miss(ctx.policy.value)
            end_call(trace, "miss", None, ctx, started, 0.0, 0, value=value)
            return value
        trace.stats.miss(ctx.policy.value)
        value = yield from _finish(ctx, cache, codec, outcome, options, probe)
    finally:
        upstream.release()
    judged = {} if probe is None else probe.verdict
    outcome_name = "verify" if "verify_match" in judged else "miss"
    end_call(trace, outcome_name, None, ctx, started, 0.0, 0, value=value, **judged)
    return value


def _finish(
    ctx: CallContext,
    cache: MultiLevelCache,
    codec: Codec,
    outcome: Outcome,
    options: FlowOptions,
    probe: Probe | None = None,
) -> Flow[Any]:
    """The leader's part after its call: shape the value for the caller (the adapter),
    store it, release the cross-process lock. Also run for a cancelled async leader,
    so that an answer its followers received is stored all the same."""
    value, store_now = outcome.value, outcome.hit is None
    if store_now and options.adapter is not None:
        value, store_now = options.adapter.on_miss(value, Commit(ctx, cache, codec))
    if probe is not None and outcome.hit is None:  # judged before the entry is shared
        probe.verdict = _judged(ctx.trace, probe, value)
    if store_now:
        yield from store_value(ctx, cache, codec, value, outcome.ms, options.stale_ttl)
        if probe is not None and options.semantic is not None:  # index it for fuzzy matches
            yield from options.semantic.remember(ctx, cache, probe)
    if outcome.lock is not None:
        yield from cache.unlock(outcome.lock, ctx.trace)
    return value


def _judged(trace: Trace, probe: Probe, value: Any) -> dict[str, Any]:
    """What a match found but not served says about the fresh answer: shadow mode,
    or verified matching (which learns from it)."""
    if probe.verify is None:
        return _shadow(trace, probe, value)
    from .semantic.judge import judge_verified

    found = probe.candidate
    correct = judge_verified(probe, value)
    if found is None or correct is None:
        return {}
    trace.stats.verify(correct)
    return {
        "verify_match": found.key, "verify_correct": correct,
        "similarity": round(found.similarity, 4), "verify_bucket": probe.verify.bucket,
    }  # fmt: skip


def _shadow(trace: Trace, probe: Probe, value: Any) -> dict[str, Any]:
    """Shadow mode: whether the match found (and not served) agreed with the answer."""
    found = probe.candidate
    if found is None or not probe.match.shadow:
        return {}
    from .semantic.level import same_answer

    judge = probe.match.judge or same_answer
    try:
        correct = bool(judge(found.hit.envelope.value, value))
    except Exception:  # a failing judge: no verdict, never the caller's problem
        return {"shadow_match": found.key}
    trace.stats.shadow(correct)
    return {
        "shadow_match": found.key, "shadow_correct": correct,
        "similarity": round(found.similarity, 4), "shadow_tier": found.level,
    }  # fmt: skip


_IMMUTABLE = frozenset({str, int, float, bool, bytes, type(None)})
_CONSUMED = (
    collections.abc.Iterator,
    collections.abc.AsyncIterator,
    collections.abc.Awaitable,
    io.IOBase,
)


class _OneShot(enum.Enum):
    """`_own_copy`'s answer for a value that cannot be handed to a second caller."""

    ONE_SHOT = "ONE_SHOT"


_ONE_SHOT: Literal[_OneShot.ONE_SHOT] = _OneShot.ONE_SHOT


def _own_copy(value: Any) -> Any:
    """A copy of a value shared by concurrent callers, so that one caller's mutation
    is not another's surprise (as with separate calls, or separate cache hits); or
    `_ONE_SHOT` when there is no such copy: an iterator, a generator, a stream (what
    one caller consumes, another would miss) or anything `copy.deepcopy` refuses."""
    if type(value) in _IMMUTABLE:
        return value
    if isinstance(value, _CONSUMED):
        return _ONE_SHOT
    try:
        return copy.deepcopy(value)
    except Exception:  # not copyable: never shared
        return _ONE_SHOT


def _answer_hit(
    ctx: CallContext, hit: Hit, started: float, adapter: ResultAdapter | None, **extra: Any
) -> Any:
    env = hit.envelope
    policy = None if ctx.policy is None else ctx.policy.value
    if hit.stale:
        extra["stale"] = True
    report_hit(ctx.trace.stats, ctx.trace, hit.tier, policy, started, env.duration_ms,
               env.saved_tokens, value=env.value, arguments=ctx.arguments, extra=extra)  # fmt: skip
    return env.value if adapter is None else adapter.on_hit(env.value)


def store_value(
    ctx: CallContext,
    cache: MultiLevelCache,
    codec: Codec,
    value: Any,
    ms: float,
    stale_ttl: float = 0.0,
) -> Flow[None]:
    """Encode ``value`` and store it in the tiers its policy reaches; kept
    ``stale_ttl`` seconds past its lifetime for stale-while-revalidate."""
    assert ctx.key is not None and ctx.policy is not None
    try:
        data, _, inflated = codec.encode_sized(
            value, policy=ctx.policy.value, created=cache.timer(), ttl=ctx.ttl, duration_ms=ms
        )
    except Exception as exc:  # any value the codec cannot store: returned, not stored
        error = str(exc) if isinstance(exc, UnsupportedValue) else f"{type(exc).__name__}: {exc}"
        ctx.trace.warning("cache.bypass", reason="unsupported_result", error=error)
        ctx.trace.stats.bypass("unsupported_result", whole_call=False)
        return
    depth = len(cache.tiers) if ctx.depth is None else ctx.depth
    yield from cache.store(ctx.key, data, ctx.ttl + stale_ttl, depth, ctx.trace, inflated)


def end_call(
    trace: Trace,
    outcome: str,
    tier: str | None,
    ctx: CallContext,
    started: float,
    saved_ms: float,
    saved_tokens: int,
    *,
    value: Any = None,
    **extra: Any,
) -> None:
    """The call's end: its ``cache.result`` event, and the listeners (``observe()``,
    OpenTelemetry) when there are any."""
    policy = None if ctx.policy is None else ctx.policy.value
    if outcome != "hit":  # a miss or a bypass has called the function: the check is free
        listeners.check()
    if listeners.ACTIVE:
        listeners.notify(listeners.CallEnd(trace.fn, ctx.key, outcome, tier, policy, started,
                                           time.perf_counter(), saved_ms, saved_tokens, extra,
                                           value, ctx.arguments))  # fmt: skip
    if trace.wants(logging.INFO):
        trace.result(outcome, tier, policy, started, saved_ms, saved_tokens, extra)
