"""The fuzzy levels inside a call's flow: find a candidate after an exact miss,
serve it (promoted under the new prompt's exact key), and remember a fresh
answer's prompt for later matches.

Only the intent text is fuzzy: a call's partition is its cache key computed with
the intent text left out (the last occurrence of it among the keyed arguments,
so earlier turns of a conversation stay exact), plus the embedder's name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._io import Flow, Op, Tier, TierOp
from ..chain import CallContext
from ..codec import Codec
from ..keys import UnkeyableError, canonical_bytes, canonical_json, make_key
from ..tiers import Hit, MultiLevelCache
from .embedder import Embedder, aembed, check_vectors
from .index import Entry
from .match import SemanticMatch
from .normal import normal_form
from .shared import BlobError, decode_partition, encode_partition
from .verify import SERVE, VERIFY, Decision, observed

__all__ = ["Candidate", "Probe", "SemanticHook", "context_key", "same_answer"]

_INTENT = {"~intent": 0}  # stands for the intent text: an object, never equal to a text


class Embed(Op):
    """Embed one text: blocking in sync code, in a thread (or ``aembed``) in async code."""

    __slots__ = ("embedder", "text")

    def __init__(self, embedder: Embedder, text: str) -> None:
        self.embedder, self.text = embedder, text

    def run(self) -> Any:
        return check_vectors(self.embedder, [self.text], self.embedder.embed([self.text]))[0]

    async def arun(self) -> Any:
        vectors = await aembed(self.embedder, [self.text])
        return check_vectors(self.embedder, [self.text], vectors)[0]


def _replace_last(data: Any, text: str) -> Any:
    """``data`` with its last string equal to ``text`` (depth first, keys in canonical
    order) replaced by `_INTENT`, or ``None`` when no string equals it."""
    path: list[Any] | None = None

    def walk(node: Any, trail: list[Any]) -> None:
        nonlocal path
        if isinstance(node, str):
            if node == text:
                path = list(trail)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, [*trail, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, [*trail, i])

    walk(data, [])
    if path is None:
        return None
    if not path:
        return _INTENT
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = _INTENT
    return data


def context_key(ctx: CallContext, ignore: Iterable[str], embedder: str) -> str | None:
    """The partition of a call: its key without the intent text; ``None`` when the
    intent text is not one of the keyed strings (then only exact matches serve)."""
    keyed: dict[str, Any] = {k: v for k, v in ctx.arguments.items() if k not in ignore}
    hook = getattr(ctx.instance, "__cache_key__", None)
    if hook is not None and not isinstance(ctx.instance, type):
        keyed["__self__"] = hook()
    if ctx.key_extra:
        keyed["__extra__"] = ctx.key_extra
    plain = json.loads(canonical_bytes(keyed))
    context = _replace_last(plain, ctx.prompt)
    if context is None:
        return None
    return make_key(ctx.fn, {"context": context, "embedder": embedder}, ctx.namespace)


class Candidate(NamedTuple):
    """A stored answer the fuzzy levels found for a call."""

    level: str  # "normalized" or "semantic"
    key: str
    similarity: float
    hit: Hit


@dataclass
class Probe:
    """What the lookup learnt, kept to remember the call's own answer after a miss."""

    match: SemanticMatch
    partition: str
    tier: Tier | None
    normal: str
    vector: Any = None
    candidate: Candidate | None = None
    verify: Decision | None = None  # verified matching: the candidate is to be judged
    verdict: dict[str, Any] = field(default_factory=dict)  # what judging it found


def _text_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    choices = getattr(value, "choices", None)
    if choices:
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        if isinstance(content, str):
            return content
    return None


def same_answer(stored: Any, fresh: Any) -> bool:
    """The default judge of shadow mode: equal answers, or answer texts with equal
    normal forms."""
    if stored == fresh:
        return True
    a, b = _text_of(stored), _text_of(fresh)
    if a is not None and b is not None:
        return normal_form(a) == normal_form(b)
    try:
        return canonical_json(stored) == canonical_json(fresh)
    except (UnkeyableError, TypeError, ValueError):
        return False


class SemanticHook:
    """A decorated function's link to semantic matching: its own `SemanticMatch`,
    ``False`` (off), or ``None`` (follow ``configure(semantic=...)``)."""

    __slots__ = ("default", "ignore", "setting")

    def __init__(
        self,
        setting: SemanticMatch | bool | None,
        ignore: Iterable[str],
        default: Callable[[], SemanticMatch | None] = lambda: None,
    ) -> None:
        self.setting, self.ignore = setting, frozenset(ignore)
        self.default = default  # the process setting, ``configure(semantic=...)``

    def current(self) -> SemanticMatch | None:
        setting = self.setting
        if setting is None:
            return self.default()
        return setting if isinstance(setting, SemanticMatch) else None

    def find(
        self, ctx: CallContext, cache: MultiLevelCache, codec: Codec, *, search: bool = True
    ) -> Flow[Probe | None]:
        """After an exact miss: the normalized level, then the semantic level (with
        ``search=False``, as under ``refresh()``: only what remembering needs). Any
        failure of its own is a ``cache.error`` and no candidate: the call goes on."""
        try:
            return (yield from self._find(ctx, cache, codec, search))
        except Exception as exc:
            cache_error(ctx, exc, "semantic")
            return None

    def _find(
        self, ctx: CallContext, cache: MultiLevelCache, codec: Codec, search: bool
    ) -> Flow[Probe | None]:
        match = self.current()
        if match is None or ctx.policy not in match.policies or not ctx.prompt:
            return None
        trace = ctx.trace
        try:
            partition = context_key(ctx, self.ignore, match.embedder.name)
        except Exception:  # a key hook that fails now: exact matching only
            return None
        if partition is None:
            return None
        depth = len(cache.tiers) if ctx.depth is None else ctx.depth
        last = cache.tiers[depth - 1]
        tier: Tier | None = last
        if not match.shared_entries or getattr(last.backend, "shared", True) is False:
            tier = None  # an in-process tier: this process's index already knows its entries
        probe = Probe(match, partition, tier, normal_form(ctx.prompt))
        if not search:
            return probe
        now = cache.timer()
        if tier is not None:
            yield from _pull(match, cache, tier, partition, ctx, now)
        found = match.index.normal(partition, probe.normal, now)
        level = "normalized"
        if found is None:
            level = "semantic"
            try:
                probe.vector = yield Embed(match.embedder, ctx.prompt)
            except Exception as exc:
                cache_error(ctx, exc, "embed")
                return probe
            if match.serves_semantic:
                found = match.index.nearest(partition, probe.vector, now)
        accepted = found is not None and (
            level == "normalized" or found.similarity >= match.threshold
        )
        verifier = match.verifier
        if verifier is not None and level == "semantic" and found is not None:
            seen = match.index.observations(partition, found.key)
            decision = verifier.decide(observed(seen), found.similarity)
            accepted = decision.action == SERVE
            if decision.action == VERIFY:
                probe.verify = decision
        if trace.wants(logging.DEBUG):
            detail: dict[str, Any] = {}
            if found is not None:
                detail["similarity"] = round(found.similarity, 4)
            if accepted and found is not None:
                detail["matched"] = found.key
            if probe.verify is not None:
                detail["verify"] = probe.verify.bucket
            trace.debug("cache.lookup", tier=level, hit=accepted, **detail)
        if found is not None and (accepted or probe.verify) and found.key != ctx.key:
            hit = yield from cache.lookup(found.key, codec, trace)
            if hit is not None:
                probe.candidate = Candidate(level, found.key, found.similarity, hit)
        if probe.candidate is None:
            probe.verify = None  # nothing stored to judge against
        return probe

    def serve(
        self, ctx: CallContext, cache: MultiLevelCache, codec: Codec, found: Candidate
    ) -> Flow[None]:
        """Store the matched answer under the call's own exact key, for the rest of
        its own lifetime: the next identical call is an exact hit."""
        env = found.hit.envelope
        now = cache.timer()
        remaining = env.expires - now
        if remaining <= 0 or not ctx.write or ctx.key is None:
            return
        try:
            data, _ = codec.encode(
                env.value, policy=env.policy, created=now, ttl=remaining,
                duration_ms=env.duration_ms, usage=env.usage,
            )  # fmt: skip
        except Exception:
            return
        depth = len(cache.tiers) if ctx.depth is None else ctx.depth
        yield from cache.store(ctx.key, data, remaining, depth, ctx.trace)

    def remember(self, ctx: CallContext, cache: MultiLevelCache, probe: Probe | None) -> Flow[None]:
        """Index a fresh answer's prompt (its answer was just stored under ``ctx.key``);
        a failure is a ``cache.error``, never the caller's."""
        try:
            yield from self._remember(ctx, cache, probe)
        except Exception as exc:
            cache_error(ctx, exc, "semantic")

    def _remember(
        self, ctx: CallContext, cache: MultiLevelCache, probe: Probe | None
    ) -> Flow[None]:
        if probe is None or ctx.key is None or not ctx.write:
            return
        match = probe.match
        if probe.vector is None:
            try:
                probe.vector = yield Embed(match.embedder, ctx.prompt)
            except Exception as exc:
                cache_error(ctx, exc, "embed")
                return
        now = cache.timer()
        entry = Entry(ctx.key, probe.normal, probe.vector, now + ctx.ttl)
        match.index.add(probe.partition, entry)
        if probe.tier is not None:
            yield from _pull(match, cache, probe.tier, probe.partition, ctx, now)
            yield from _push(match, cache, probe.tier, probe.partition, ctx, now)


def cache_error(ctx: CallContext, exc: BaseException, reason: str) -> None:
    ctx.trace.stats.error("semantic")
    ctx.trace.warning(
        "cache.error", tier="semantic", error=f"{type(exc).__name__}: {exc}", reason=reason
    )


def _blob_key(partition: str) -> str:
    return partition + ":sem"


def _pull(
    match: SemanticMatch, cache: MultiLevelCache, tier: Tier, partition: str,
    ctx: CallContext, now: float,
) -> Flow[None]:  # fmt: skip
    """Merge the partition's entries other processes shared into the local index."""
    try:
        data = yield TierOp(tier, "get", _blob_key(partition))
    except Exception as exc:
        cache.report_error(ctx.trace, tier, exc, "backend")
        return
    if data is None or match.index.seen(partition, data):
        return  # nothing shared, or nothing new since the last read
    try:
        entries = decode_partition(data, match.embedder.name, match.embedder.dimension)
    except BlobError as exc:
        cache.report_error(ctx.trace, tier, exc, "invalid_index")
        return
    match.index.merge(partition, entries, now)


def _push(
    match: SemanticMatch, cache: MultiLevelCache, tier: Tier, partition: str,
    ctx: CallContext, now: float,
) -> Flow[None]:  # fmt: skip
    entries = match.index.entries(partition, now)
    if not entries:
        return
    blob = encode_partition(
        entries, match.embedder.name, match.embedder.dimension,
        limit=match.shared_entries, max_bytes=tier.max_value_bytes,
    )  # fmt: skip
    ttl = max(e.expires for e in entries) - now
    try:
        yield TierOp(tier, "set", _blob_key(partition), blob, ttl)
        match.index.seen(partition, blob)
    except Exception as exc:
        cache.report_error(ctx.trace, tier, exc, "backend")
