"""OpenAI ``embeddings.create`` as `wrap_openai` caches it: a pure function of the request.

Each input (a text, or a token array) is an entry of its own, keyed by the
endpoint, the other request fields and the input itself. A request whose inputs
were partly seen before is answered from the cache for those and calls the API
once, for the rest; the response keeps the order of the request. The policy is
fixed (LONG unless ``embeddings_policy`` says otherwise): an embedding does not
go stale, so the prompt's intent is not asked, and matching is exact only.

Vectors are stored compactly: base64 of little-endian float32 when every value
is a float32 (as the SDK decodes them), else of float64, so that they read back
bit for bit. ``usage`` counts every input of the request, whether the cache or
the API answered it; an input's share of a batch's tokens is proportional to
its length.
"""

from __future__ import annotations

import base64
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from openai import NotGiven, Omit
from openai.types import CreateEmbeddingResponse, Embedding
from openai.types.create_embedding_response import Usage

from . import config
from ._io import Call, Flow, run_async, run_sync
from .chain import (
    DEFAULT_TIERS_FOR,
    DEGRADED,
    BuildKey,
    CallContext,
    ChoosePolicy,
    check_controls,
    run_steps,
)
from .clientwrap import TRANSPORT_OPTIONS
from .codec import Codec, register_type
from .flow import end_call, store_value
from .hits import report_hit
from .policy import CachePolicy
from .stats import CacheStats, Recorders
from .tiers import MultiLevelCache
from .trace import Trace

__all__ = ["EmbeddingsCache", "wrap_embeddings"]

FN = "openai.embeddings.create"
Item = Any  # one input: a text, or a list of token ids


class _Vector:
    """One input's stored answer: its embedding (floats, or the API's base64 text),
    the model that made it, and its share of the tokens."""

    __slots__ = ("embedding", "model", "tokens")

    def __init__(self, embedding: list[float] | str, model: str, tokens: int) -> None:
        self.embedding, self.model, self.tokens = embedding, model, tokens


def _pack(values: list[float]) -> dict[str, str]:
    for code in ("f", "d"):
        packed = array(code, values)
        if code == "d" or packed.tolist() == values:
            break
    if sys.byteorder == "big":
        packed.byteswap()
    return {"dtype": "f4" if code == "f" else "f8", "b64": base64.b64encode(packed).decode()}


def _unpack(data: dict[str, str]) -> list[float]:
    code = {"f4": "f", "f8": "d"}[data["dtype"]]
    packed: array[Any] = array(code, base64.b64decode(data["b64"]))
    if sys.byteorder == "big":
        packed.byteswap()
    values: list[float] = packed.tolist()
    return values


def _dump(vector: _Vector) -> dict[str, Any]:
    head = {"model": vector.model, "tokens": vector.tokens}
    if isinstance(vector.embedding, str):
        return {**head, "text": vector.embedding}
    return {**head, **_pack(vector.embedding)}


def _load(data: dict[str, Any]) -> _Vector:
    embedding = data["text"] if "text" in data else _unpack(data)
    if not isinstance(data["model"], str) or type(data["tokens"]) is not int:
        raise TypeError("not a stored embedding")
    return _Vector(embedding, data["model"], data["tokens"])


register_type(
    "openai.embedding",
    match=lambda value: type(value) is _Vector,
    dump=_dump,
    load=_load,
    usage=lambda value: {"prompt_tokens": value.tokens, "total_tokens": value.tokens},
)


def _items(given: Any) -> list[Item]:
    """The inputs of a request: one text, one token array, or a list of either."""
    if isinstance(given, str):
        return [given]
    try:
        given = list(given)
    except TypeError:
        return []
    if given and all(type(token) is int for token in given):
        return [given]
    return [item if isinstance(item, str) else list(item) for item in given]


def _shares(total: int, items: Sequence[Item]) -> list[int]:
    """``total`` tokens split over ``items`` by length, summing exactly to ``total``."""
    weights = [max(len(item), 1) for item in items]
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    by_remainder = sorted(range(len(items)), key=lambda i: -(total * weights[i] % whole))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


class EmbeddingsCache:
    """The cached ``embeddings.create`` of one wrapped client."""

    def __init__(
        self,
        original: Callable[..., Any],
        endpoint: str,
        options: dict[str, Any],
        policy: CachePolicy | None = None,
    ) -> None:
        self.original = original
        self.endpoint = endpoint
        self.cache: MultiLevelCache | None = options.get("cache")
        self.ignore = frozenset(options.get("ignore", ()))
        policy = CachePolicy.LONG if policy is None else CachePolicy(policy)
        tiers_for = {**DEFAULT_TIERS_FOR, **(options.get("tiers_for") or {})}
        self.steps = (
            check_controls,
            ChoosePolicy(lambda _text: policy, tiers_for),
            *options.get("steps", ()),
            BuildKey((), options.get("namespace"), _namespace_required(options)),
        )
        self.codec = Codec()
        self.stats = CacheStats(FN)

    def split(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        request, transport = {}, {}
        for name, value in kwargs.items():
            if isinstance(value, (NotGiven, Omit)):
                continue
            if name in TRANSPORT_OPTIONS or name in self.ignore:
                transport[name] = value
            else:
                request[name] = value
        return request, transport

    def _context(self, request: dict[str, Any], item: Item, cache: MultiLevelCache) -> CallContext:
        fields = {k: v for k, v in request.items() if k != "input"}
        ctx = CallContext(FN, {"endpoint": self.endpoint, "request": fields, "input": item})
        run_steps(self.steps, ctx)
        ctx.trace = Trace(FN, ctx.key, Recorders(cache.recorder, self.stats))
        return ctx

    def flow(self, kwargs: dict[str, Any]) -> Flow[Any]:
        """One ``embeddings.create`` call: lookups, at most one API call, stores."""
        started = time.perf_counter()
        request, transport = self.split(kwargs)
        items = _items(request["input"]) if "input" in request else []
        if not items:  # nothing to look up: the API (or the SDK) answers as it does
            value, _ = yield Call(lambda: self.original(**kwargs))
            return value
        cache = self.cache or config.default_cache()
        unique: dict[str, CallContext] = {}
        positions: list[CallContext] = []
        for item in items:
            ctx = self._context(request, item, cache)
            if ctx.skip is not None or ctx.key is None:  # all inputs decide alike
                return (yield from self._bypass(ctx, kwargs, started))
            positions.append(unique.setdefault(ctx.key, ctx))
        found: dict[str, _Vector] = {}
        for key, ctx in unique.items():
            hit = (yield from cache.lookup(key, self.codec, ctx.trace)) if ctx.read else None
            if hit is not None:
                env = hit.envelope
                found[key] = env.value
                policy = None if ctx.policy is None else ctx.policy.value
                report_hit(ctx.trace.stats, ctx.trace, hit.tier, policy, started,
                           env.duration_ms, env.saved_tokens, arguments=ctx.arguments)  # fmt: skip
        missing = [key for key in unique if key not in found]
        fresh = None
        if missing:
            inputs = [unique[key].arguments["input"] for key in missing]
            whole = len(missing) == len(items)  # nothing found, no repeated input
            upstream = {**request, "input": request["input"] if whole else inputs}
            fresh, ms = yield Call(lambda: self.original(**upstream, **transport))
            shares = _shares(fresh.usage.prompt_tokens, inputs)
            data = sorted(fresh.data, key=lambda datum: datum.index)
            for key, datum, share in zip(missing, data, shares, strict=True):
                ctx = unique[key]
                found[key] = vector = _Vector(datum.embedding, fresh.model, share)
                policy = None if ctx.policy is None else ctx.policy.value
                ctx.trace.stats.miss(policy)
                yield from store_value(ctx, cache, self.codec, vector, ms / len(missing))
                end_call(ctx.trace, "miss", None, ctx, started, 0.0, 0, value=fresh)
            if whole:
                return fresh
        return self._response([found[ctx.key] for ctx in positions])  # type: ignore[index]

    def _bypass(self, ctx: CallContext, kwargs: dict[str, Any], started: float) -> Flow[Any]:
        level = "warning" if ctx.skip in DEGRADED else "info"
        detail = {"error": ctx.skip_error} if ctx.skip_error else {}
        getattr(ctx.trace, level)("cache.bypass", reason=ctx.skip, **detail)
        policy = None if ctx.policy is None else ctx.policy.value
        ctx.trace.stats.bypass(ctx.skip or "bypass", policy=policy)
        value, _ = yield Call(lambda: self.original(**kwargs))
        end_call(ctx.trace, "bypass", None, ctx, started, 0.0, 0, value=value)
        return value

    def _response(self, vectors: list[_Vector]) -> CreateEmbeddingResponse:
        tokens = sum(vector.tokens for vector in vectors)
        # the SDK builds base64 answers without validation (they are not List[float])
        data = [
            Embedding.model_construct(embedding=vector.embedding, index=index, object="embedding")
            for index, vector in enumerate(vectors)
        ]
        return CreateEmbeddingResponse(
            data=data,
            model=vectors[0].model,
            object="list",
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        )


def wrap_embeddings(
    resource: Any,
    endpoint: str,
    is_async: bool,
    options: dict[str, Any],
    policy: CachePolicy | None = None,
) -> EmbeddingsCache:
    """Replace ``resource.create`` (this embeddings resource only) with the cached one."""
    cached = EmbeddingsCache(resource.create, endpoint, options, policy)
    if is_async:

        async def create_async(**kwargs: Any) -> Any:
            return await run_async(cached.flow(kwargs))

        setattr(resource, "create", create_async)  # noqa: B010 - shadows the method
    else:

        def create_sync(**kwargs: Any) -> Any:
            return run_sync(cached.flow(kwargs))

        setattr(resource, "create", create_sync)  # noqa: B010 - shadows the method
    return cached


def _namespace_required(options: dict[str, Any]) -> bool | Callable[[], bool]:
    """The option, or the process setting (``configure``) read at each call."""
    required = options.get("namespace_required")
    return config.namespace_required if required is None else bool(required)
