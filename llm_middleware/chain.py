"""The chain: **policy → tier lookup → call → promote/store**.

Steps are plain callables over one `CallContext`; they decide (controls, intent,
policy, key) and never touch a backend. A step may raise `SkipCache` to make the
call uncached. The I/O of a call -- look up the tiers, call the function,
promote, store -- is the single flow `cached_call`, run by the sync or the async
driver of ``_io``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from . import config
from ._io import Flow, Op, run_async, run_sync
from .codec import Codec, UnsupportedValue
from .control import current_mode, current_policy
from .errors import SkipCache
from .keys import UnkeyableError, make_key
from .policy import POLICY_TTL, CachePolicy, Classifier, IntentRules, classify_with
from .singleflight import AsyncFlights, Flights
from .tiers import MultiLevelCache
from .trace import Trace

__all__ = [
    "DEFAULT_TIERS_FOR",
    "BuildKey",
    "CallContext",
    "ChoosePolicy",
    "Commit",
    "ReadIntent",
    "ResultAdapter",
    "Step",
    "cached_call",
    "check_controls",
    "run_steps",
]

DEGRADED = frozenset({"unkeyable_argument", "namespace_missing", "namespace_error"})
"""Bypass reasons that mean the cache could not do its job: logged as warnings."""

DEFAULT_TIERS_FOR: Mapping[CachePolicy, int | None] = {
    CachePolicy.SHORT: 1,
    CachePolicy.MEDIUM: 2,
    CachePolicy.LONG: None,  # all tiers
}


class CallContext:
    """Everything the steps know about one call. Steps read and set its fields.

    ``arguments`` are the bound arguments (defaults applied, ``self``/``cls``
    left out); ``key_extra`` is data a user step adds to the key.
    """

    __slots__ = (
        "arguments",
        "depth",
        "fn",
        "instance",
        "key",
        "key_extra",
        "namespace",
        "policy",
        "prompt",
        "read",
        "rule",
        "skip",
        "trace",
        "ttl",
        "write",
    )

    def __init__(self, fn: str, arguments: dict[str, Any], instance: object = None) -> None:
        self.fn = fn
        self.arguments = arguments
        self.instance = instance
        self.prompt = ""
        self.policy: CachePolicy | None = None
        self.ttl = 0
        self.rule = ""
        self.depth: int | None = None
        self.namespace: str | None = None
        self.key: str | None = None
        self.key_extra: dict[str, Any] = {}
        self.read = True
        self.write = True
        self.skip: str | None = None
        self.trace = Trace(fn)


Step = Callable[[CallContext], None]
"""A chain step: reads and sets fields of the context; may raise `SkipCache`."""


def check_controls(ctx: CallContext) -> None:
    """Apply ``bypass()`` / ``refresh()`` blocks around the call."""
    mode = current_mode()
    if mode == "bypass":
        raise SkipCache("bypass")
    if mode == "refresh":
        ctx.read = False


class ReadIntent:
    """Set ``ctx.prompt`` to the intent text read from the arguments."""

    __slots__ = ("extract",)

    def __init__(self, extract: Callable[[Mapping[str, Any]], str]) -> None:
        self.extract = extract

    def __call__(self, ctx: CallContext) -> None:
        ctx.prompt = self.extract(ctx.arguments)


class ChoosePolicy:
    """Classify the prompt (unless ``use_policy`` decides) and set policy, ttl, depth."""

    __slots__ = ("classifier", "tiers_for")

    def __init__(
        self,
        classifier: IntentRules | Classifier,
        tiers_for: Mapping[CachePolicy, int | None] = DEFAULT_TIERS_FOR,
    ) -> None:
        self.classifier = classifier
        self.tiers_for = tiers_for

    def __call__(self, ctx: CallContext) -> None:
        forced = current_policy()
        if forced is not None:
            ttl = (
                self.classifier.ttl(forced)
                if isinstance(self.classifier, IntentRules)
                else POLICY_TTL[forced]
            )
            ctx.policy, ctx.ttl, ctx.rule = forced, ttl, "use_policy"
        else:
            ctx.policy, ctx.ttl, ctx.rule = classify_with(self.classifier, ctx.prompt)
        if ctx.policy is CachePolicy.NEVER or ctx.ttl <= 0:
            raise SkipCache("policy_never")
        ctx.depth = self.tiers_for.get(ctx.policy)


class BuildKey:
    """Set ``ctx.key`` from the function, its keyed arguments and the namespace.

    With ``namespace_required``, a call whose namespace resolves to nothing runs
    uncached instead of sharing a global entry (fail closed).
    """

    __slots__ = ("ignore", "namespace", "namespace_required")

    def __init__(
        self,
        ignore: Iterable[str] = (),
        namespace: str | Callable[[Mapping[str, Any]], object] | None = None,
        namespace_required: bool | None = None,
    ) -> None:
        self.ignore = frozenset(ignore)
        self.namespace = namespace
        self.namespace_required = namespace_required

    def __call__(self, ctx: CallContext) -> None:
        namespace: object = self.namespace
        if callable(namespace):
            try:
                namespace = namespace(ctx.arguments)
            except Exception as exc:
                raise SkipCache("namespace_error") from exc
        ctx.namespace = None if namespace is None or namespace == "" else str(namespace)
        if ctx.namespace is None:
            required = self.namespace_required
            if required is None:
                required = config.namespace_required()
            if required:
                raise SkipCache("namespace_missing")
        keyed: dict[str, Any] = {k: v for k, v in ctx.arguments.items() if k not in self.ignore}
        hook = getattr(ctx.instance, "__cache_key__", None)
        if hook is not None and not isinstance(ctx.instance, type):
            keyed["__self__"] = hook()
        if ctx.key_extra:
            keyed["__extra__"] = ctx.key_extra
        try:
            ctx.key = make_key(ctx.fn, keyed, ctx.namespace)
        except UnkeyableError as exc:
            raise SkipCache("unkeyable_argument") from exc
        ctx.trace.key = ctx.key


def run_steps(steps: Sequence[Step], ctx: CallContext) -> None:
    """Run ``steps`` in order; a `SkipCache` marks the call uncached."""
    try:
        for step in steps:
            step(ctx)
    except SkipCache as skip:
        ctx.skip = skip.reason
        ctx.read = ctx.write = False


# -- the call flow -------------------------------------------------------------------


class Upstream(Op):
    """Call the wrapped function, once per key across concurrent identical misses.

    The result is ``(value, leader, duration_ms)``. The leader must `release`
    once the value is stored, so late arrivals join the finished call.
    """

    __slots__ = ("call", "flight", "flights", "key")

    def __init__(
        self, call: Callable[[], Any], key: str | None, flights: Flights | AsyncFlights[Any]
    ) -> None:
        self.call = call
        self.key = key
        self.flights = flights
        self.flight: object | None = None

    def run(self) -> tuple[Any, bool, float]:
        call = self.call

        def timed() -> tuple[Any, float]:
            start = time.perf_counter()
            return call(), (time.perf_counter() - start) * 1000

        if self.key is None:
            value, ms = timed()
            return value, True, ms
        assert isinstance(self.flights, Flights)
        (value, ms), self.flight = self.flights.run(self.key, timed)
        return value, self.flight is not None, ms

    async def arun(self) -> tuple[Any, bool, float]:
        call: Callable[[], Awaitable[Any]] = self.call

        async def timed() -> tuple[Any, float]:
            start = time.perf_counter()
            return await call(), (time.perf_counter() - start) * 1000

        if self.key is None:
            value, ms = await timed()
            return value, True, ms
        assert isinstance(self.flights, AsyncFlights)
        (value, ms), self.flight = await self.flights.run(self.key, timed)
        return value, self.flight is not None, ms

    def release(self) -> None:
        """Close the leader's flight (no-op for followers and uncached calls)."""
        if self.flight is not None and self.key is not None:
            self.flights.release(self.key, self.flight)
            self.flight = None


class Commit:
    """Stores an answer that is complete only later, e.g. a stream's recording once
    the stream has finished normally. ``commit(value, ms)`` from sync code,
    ``await commit.acall(value, ms)`` from async code."""

    __slots__ = ("cache", "codec", "ctx")

    def __init__(self, ctx: CallContext, cache: MultiLevelCache, codec: Codec) -> None:
        self.ctx, self.cache, self.codec = ctx, cache, codec

    def __call__(self, value: Any, ms: float) -> None:
        run_sync(_store(self.ctx, self.cache, self.codec, value, ms))

    async def acall(self, value: Any, ms: float) -> None:
        await run_async(_store(self.ctx, self.cache, self.codec, value, ms))


class ResultAdapter(Protocol):
    """Lets an integration shape results around the cache (the OpenAI streams)."""

    def shareable(self, ctx: CallContext) -> bool:
        """May concurrent identical calls share one upstream call's result?"""

    def on_hit(self, value: Any) -> Any:
        """What the caller receives for a stored ``value``."""

    def on_miss(self, value: Any, commit: Commit) -> tuple[Any, bool]:
        """``(what the caller receives, store value now?)``; when not stored now, the
        adapter calls ``commit`` later with the value to store."""


def cached_call(
    ctx: CallContext,
    cache: MultiLevelCache,
    codec: Codec,
    upstream: Upstream,
    adapter: ResultAdapter | None = None,
) -> Flow[Any]:
    """The I/O of one call, after the steps decided: lookup → call → store."""
    trace = ctx.trace
    started = time.perf_counter()
    if ctx.policy is not None:
        trace.debug("cache.policy", policy=ctx.policy.value, ttl=ctx.ttl, rule=ctx.rule)
    if ctx.skip is not None:
        level = logging.WARNING if ctx.skip in DEGRADED else logging.INFO
        trace.emit(level, "cache.bypass", reason=ctx.skip)
        trace.stats.bypass(ctx.skip)
        upstream.key = None
        value, _, ms = yield upstream
        trace.debug("cache.call", duration_ms=round(ms, 3))
        _result(trace, "bypass", None, ctx, started, 0.0, 0)
        return value
    assert ctx.key is not None and ctx.policy is not None
    if ctx.read:
        hit = yield from cache.lookup(ctx.key, codec, trace)
        if hit is not None:
            env = hit.envelope
            trace.stats.hit(hit.tier, env.duration_ms, env.saved_tokens)
            _result(trace, "hit", hit.tier, ctx, started, env.duration_ms, env.saved_tokens)
            return env.value if adapter is None else adapter.on_hit(env.value)
    else:
        trace.info("cache.bypass", reason="refresh")
    upstream.key = ctx.key if adapter is None or adapter.shareable(ctx) else None
    try:
        value, leader, ms = yield upstream
        trace.debug("cache.call", duration_ms=round(ms, 3))
        if not leader:  # another caller's in-flight call answered this one
            trace.stats.hit("inflight", ms, 0)
            _result(trace, "hit", "inflight", ctx, started, ms, 0)
            return value
        trace.stats.miss()
        store_now = True
        if adapter is not None:
            value, store_now = adapter.on_miss(value, Commit(ctx, cache, codec))
        if store_now:
            yield from _store(ctx, cache, codec, value, ms)
    finally:
        upstream.release()
    _result(trace, "miss", None, ctx, started, 0.0, 0)
    return value


def _store(
    ctx: CallContext, cache: MultiLevelCache, codec: Codec, value: Any, ms: float
) -> Flow[None]:
    assert ctx.key is not None and ctx.policy is not None
    try:
        data, _ = codec.encode(
            value, policy=ctx.policy.value, created=cache.timer(), ttl=ctx.ttl, duration_ms=ms
        )
    except UnsupportedValue as exc:
        ctx.trace.warning("cache.bypass", reason="unsupported_result", error=str(exc))
        ctx.trace.stats.bypass("unsupported_result", whole_call=False)
        return
    depth = len(cache.tiers) if ctx.depth is None else ctx.depth
    yield from cache.store(ctx.key, data, ctx.ttl, depth, ctx.trace)


def _result(
    trace: Trace,
    outcome: str,
    tier: str | None,
    ctx: CallContext,
    started: float,
    saved_ms: float,
    saved_tokens: int,
) -> None:
    trace.info(
        "cache.result",
        outcome=outcome,
        tier=tier,
        policy=None if ctx.policy is None else ctx.policy.value,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        saved_ms=round(saved_ms, 3),
        saved_tokens=saved_tokens,
    )
