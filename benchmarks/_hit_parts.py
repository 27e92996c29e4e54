"""The pieces of a memory hit, for `benchmarks.breakdown`: variants of the whole hit with one
piece made free, and each piece on its own.

This reaches into the library's internals (``_CachedFunction``, its binder and steps, the
flows, ``Trace``), so it follows the hit path as it is: when that path is reshaped, update
the variants here. A variant that cannot be built any more is reported, not fatal.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import structlog

from backends.memory import MemoryBackend
from llm_middleware import MultiLevelCache, trace
from llm_middleware._io import Tier, TierOp, run_sync
from llm_middleware.chain import CallContext, run_steps
from llm_middleware.codec import Codec, Envelope
from llm_middleware.decorator import _CachedFunction, decorate
from llm_middleware.keys import canonical_json
from llm_middleware.stats import CacheStats, Recorders

from ._timing import Runner, Subject, sync_runner
from .workloads import PROMPT, baseline_cached, memory_cache, upstream

__all__ = ["pieces", "savings"]

Patch = tuple[Callable[[], None] | None, Callable[[], None] | None]


class _DictBackend:
    """A memory tier with no lock and no expiry bookkeeping: a dict."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.get = self.data.get

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def close(self) -> None:
        self.data.clear()


class _DecodedCodec(Codec):
    """Answers every decode with one envelope decoded in advance."""

    __slots__ = ("envelope",)
    envelope: Envelope

    def decode(self, data: bytes) -> Envelope:
        return self.envelope


class _NoStats(CacheStats):
    """Counters whose hit (the only counter a hit touches) takes no lock and counts nothing:
    the method call stays, the lock and the Counter update go."""

    __slots__ = ()

    def hit(self, tier: str, saved_ms: float, saved_tokens: int) -> None:
        pass


class _PreBound:
    """A binder whose ``bind`` returns arguments bound in advance."""

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.arguments = arguments

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        return self.arguments


def _variant(cache: MultiLevelCache | None = None) -> _CachedFunction:
    cached = _CachedFunction(upstream, cache=cache or memory_cache())
    cached.call(upstream, None, (PROMPT,), {})  # store the answer
    return cached


def _direct(cached: _CachedFunction) -> Runner:
    return sync_runner(cached.call, upstream, None, (PROMPT,), {})


def savings() -> tuple[list[tuple[str, Subject]], list[str]]:
    """The whole hit, then the hit with one piece made free; and the variants that could
    not be built (an internal they patch has moved)."""
    plain = _variant()
    ctx = plain.context(None, (PROMPT,), {})
    assert ctx is not None and ctx.key is not None and ctx.policy is not None
    key, policy, ttl, rule, depth = ctx.key, ctx.policy, ctx.ttl, ctx.rule, ctx.depth
    data = plain.cache.tiers[0].backend.get(key)  # type: ignore[union-attr]
    assert data is not None
    wrapped = decorate(upstream, cache=plain.cache)
    baseline = baseline_cached(upstream)
    baseline(PROMPT)
    subjects = [
        ("wrapt", Subject("wrapt", sync_runner(wrapped, PROMPT))),
        ("direct", Subject("direct", _direct(plain))),
        ("baseline", Subject("baseline", sync_runner(baseline, PROMPT))),
    ]

    def swap(owner: Any, attr: str, value: Any) -> Patch:
        saved = getattr(owner, attr)
        return (lambda: setattr(owner, attr, value), lambda: setattr(owner, attr, saved))

    def no_trace() -> Subject:
        mute, emit = swap(trace.Trace, "emit", lambda *a, **k: None)
        deaf, wants = swap(trace.Trace, "wants", lambda self, level: False)

        def setup() -> None:
            mute()  # type: ignore[misc]
            deaf()  # type: ignore[misc]

        def teardown() -> None:
            emit()  # type: ignore[misc]
            wants()  # type: ignore[misc]

        return Subject("", _direct(_variant()), setup, teardown)

    def one_output() -> Subject:
        output = trace._Output()  # built under the filtered configuration
        return Subject("", _direct(_variant()), *swap(trace, "_Output", lambda: output))

    def prebound() -> Subject:
        cached = _variant()
        cached.binder = _PreBound(dict(ctx.arguments))  # type: ignore[assignment]
        return Subject("", _direct(cached))

    def classified() -> Subject:
        cached = _variant()

        def chosen(c: CallContext) -> None:
            c.policy, c.ttl, c.rule, c.depth = policy, ttl, rule, depth

        cached.steps = tuple(chosen if s is cached.choose_policy else s for s in cached.steps)
        return Subject("", _direct(cached))

    def keyed() -> Subject:
        cached = _variant()

        def known_key(c: CallContext) -> None:
            c.key = c.trace.key = key

        cached.steps = (*cached.steps[:-1], known_key)
        return Subject("", _direct(cached))

    def decoded() -> Subject:
        cached = _variant()
        fast_codec = _DecodedCodec()
        fast_codec.envelope = cached.codec.decode(data)
        cached.codec = fast_codec
        return Subject("", _direct(cached))

    def no_stats() -> Subject:
        cached = _variant()
        cached.stats = _NoStats()
        cached.cache._stats = _NoStats()  # type: ignore[union-attr]
        cached._recorders = None  # rebuilt from the counters above on the next call
        return Subject("", _direct(cached))

    def dict_tier() -> Subject:
        return Subject("", _direct(_variant(MultiLevelCache([_DictBackend(), _DictBackend()]))))

    variants: list[tuple[str, Callable[[], Subject]]] = [
        ("trace (3 events, all filtered out)", no_trace),
        ("  of which: _Output per call (get_config, is_enabled_for)", one_output),
        ("argument binding (Binder.bind)", prebound),
        ("classification (ChoosePolicy step)", classified),
        ("key building (BuildKey: JSON + blake2b)", keyed),
        ("envelope decode (memo lookup by bytes)", decoded),
        ("stats counters (2 x lock + Counter update)", no_stats),
        ("memory tier get (lock + TLRUCache) -> dict.get", dict_tier),
    ]
    missing = []
    for label, build in variants:
        try:
            subject = build()
        except Exception as exc:  # the internals moved: say so, measure the rest
            missing.append(f"{label.strip()}: {type(exc).__name__}: {exc}")
            continue
        subject.name = label
        subjects.append((label, subject))
    return subjects, missing


def pieces() -> tuple[list[tuple[str, Runner]], list[str]]:
    cached = _variant()
    ctx = cached.context(None, (PROMPT,), {})
    assert ctx is not None and ctx.key is not None
    key, name, cache = ctx.key, cached.name, cached.cache
    assert cache is not None
    backend = cache.tiers[0].backend
    data = backend.get(key)
    assert data is not None
    recorders = Recorders(cache.recorder, cached.stats)
    warm = trace.Trace(name, key, recorders)
    warm.wants(logging.DEBUG)  # the first asks structlog; time the later ones
    payload = canonical_json([name, ctx.arguments])

    def bind() -> None:
        cached.binder.bind((PROMPT,), {})

    def exact_bind() -> None:
        cached.signature.bind(PROMPT).apply_defaults()

    def digest() -> None:
        hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

    def driver() -> Runner:
        noop_tier = Tier("L0", MemoryBackend())

        def flow() -> Any:
            yield from inner()

        def inner() -> Any:
            return (yield TierOp(noop_tier, "get", key))

        return sync_runner(lambda: run_sync(flow()))

    decode_uncached = getattr(cached.codec, "_decode", cached.codec.decode)

    def steps() -> list[Callable[[CallContext], None]]:
        return list(cached.steps)

    factories: list[tuple[str, Callable[[], Runner]]] = [
        ("argument binding: Binder.bind", lambda: sync_runner(bind)),
        ("  (inspect.Signature.bind + apply_defaults)", lambda: sync_runner(exact_bind)),
        ("CallContext (+ Trace, Recorders)", lambda: sync_runner(CallContext, name, ctx.arguments)),
        ("step check_controls (contextvar)", lambda: sync_runner(steps()[0], ctx)),
        ("step ReadIntent", lambda: sync_runner(steps()[1], ctx)),
        ("step ChoosePolicy (remembered verdict)", lambda: sync_runner(cached.choose_policy, ctx)),
        ("step BuildKey", lambda: sync_runner(steps()[-1], ctx)),
        (
            "  canonical_json (json.dumps, sort_keys)",
            lambda: sync_runner(canonical_json, [name, ctx.arguments]),
        ),
        ("  blake2b + hexdigest", lambda: sync_runner(digest)),
        ("run_steps (all steps)", lambda: sync_runner(run_steps, cached.steps, ctx)),
        ("MemoryBackend.get (lock + TLRUCache.get)", lambda: sync_runner(backend.get, key)),
        ("Codec.decode (remembered)", lambda: sync_runner(cached.codec.decode, data)),
        ("  decode uncached (json.loads + Envelope)", lambda: sync_runner(decode_uncached, data)),
        ("run_sync over 2 nested generators, 1 TierOp", driver),
        ("trace: _Output() (once per call)", lambda: sync_runner(trace._Output)),
        ("  structlog.get_config()", lambda: sync_runner(structlog.get_config)),
        ("  structlog.is_configured()", lambda: sync_runner(structlog.is_configured)),
        ("trace: Trace.wants (after the first)", lambda: sync_runner(warm.wants, logging.DEBUG)),
        (
            "Recorders.hit, 2 targets (lock + Counter)",
            lambda: sync_runner(recorders.hit, "L1", 1.0, 0),
        ),
    ]
    pieces, missing = [], []
    for label, factory in factories:
        try:
            pieces.append((label, factory()))
        except Exception as exc:
            missing.append(f"{label.strip()}: {type(exc).__name__}: {exc}")
    return pieces, missing
