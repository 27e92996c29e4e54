"""`IntentCache`: a LangChain ``BaseCache`` over our tiers, intent policy and trace.

``set_llm_cache(IntentCache(...))`` caches every LangChain chat model and LLM.
Each lookup reads the intent text from the prompt LangChain hands over (for a
chat model, the text of the last human message of its serialized messages),
chooses the policy -- a NEVER prompt is neither looked up nor stored -- and
reads the tiers; each update stores the generations for the policy's lifetime
in its tiers. Entries live in the cache's ``namespace`` (``"langchain"`` by
default), so `IntentCache.clear` forgets only them.

Generations are stored as LangChain's own JSON (``langchain_core.load.dumpd``)
and read back with an allow-list of generation and message classes: never pickled.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import Serializable, dumpd, load
from langchain_core.messages import AIMessage, AIMessageChunk, ChatMessage, ChatMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from . import config
from ._io import Flow, run_async, run_sync
from .chain import (
    DEFAULT_TIERS_FOR,
    DEGRADED,
    BuildKey,
    CallContext,
    ChoosePolicy,
    ReadIntent,
    check_controls,
    run_steps,
)
from .codec import Codec, register_type
from .flow import end_call, store_value
from .hits import report_hit
from .intent_text import last_user_text
from .policy import CachePolicy, Classifier, IntentRules
from .stats import CacheStats, Recorders, StatsSnapshot
from .tiers import MultiLevelCache
from .trace import Trace

__all__ = ["IntentCache"]

FN = "langchain.llm_cache"
DEFAULT_NAMESPACE = "langchain"
_ALLOWED: list[type[Serializable]] = [
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    ChatMessageChunk,
]


class _Generations:
    """What LangChain stores: a list of generations."""

    __slots__ = ("items",)

    def __init__(self, items: Sequence[Generation]) -> None:
        self.items = list(items)


def _load(data: Any) -> list[Generation]:
    with warnings.catch_warnings():  # `load` is marked beta; its allow-list is what we need
        warnings.simplefilter("ignore", LangChainBetaWarning)
        items = [load(item, allowed_objects=_ALLOWED) for item in data]
    if not all(isinstance(item, Generation) for item in items):
        raise TypeError("not a list of generations")
    return items


register_type(
    "langchain.generations",
    match=lambda value: type(value) is _Generations,
    dump=lambda value: [dumpd(item) for item in value.items],
    load=_load,
)


def intent_text(prompt: str) -> str:
    """The intent text of a LangChain prompt: the last human message of a chat
    model's serialized messages, or the prompt itself (an LLM's)."""
    if not prompt.startswith("["):
        return prompt
    try:
        messages = json.loads(prompt)
    except ValueError:
        return prompt
    plain = []
    for message in messages if isinstance(messages, list) else []:
        kwargs = message.get("kwargs") if isinstance(message, Mapping) else None
        if isinstance(kwargs, Mapping):
            role = "user" if kwargs.get("type") == "human" else kwargs.get("type")
            plain.append({"role": role, "content": kwargs.get("content")})
    return last_user_text(plain) if plain else prompt


class IntentCache(BaseCache):
    """A LangChain cache over a `MultiLevelCache` (default: the process default).

    ``rules`` (default: the configured ones) choose each prompt's policy;
    ``namespace`` keeps these entries apart from others (and is what `clear`
    forgets); ``tiers_for`` is as in `cache_by_intent`.
    """

    def __init__(
        self,
        cache: MultiLevelCache | None = None,
        *,
        rules: IntentRules | Classifier | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        tiers_for: Mapping[CachePolicy, int | None] | None = None,
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise TypeError(f"namespace must be a non-empty string, not {namespace!r}")
        self._cache = cache
        self.rules = rules
        self.namespace = namespace
        self._policy = ChoosePolicy(
            rules or config.default_rules(), {**DEFAULT_TIERS_FOR, **(tiers_for or {})}
        )
        self._steps = (
            check_controls,
            ReadIntent(lambda arguments: intent_text(arguments["prompt"])),
            self._policy,
            BuildKey((), namespace),
        )
        self._codec = Codec()
        self._stats = CacheStats(FN)

    @property
    def cache(self) -> MultiLevelCache:
        """The tiers this cache reads and writes."""
        return self._cache or config.default_cache()

    def stats(self) -> StatsSnapshot:
        """This cache's hits, misses and bypasses (the tiers' are in ``cache.stats()``)."""
        return self._stats.snapshot()

    def _context(self, prompt: str, llm_string: str, cache: MultiLevelCache) -> CallContext:
        if self.rules is None:  # follow configure(rules=...) made after construction
            self._policy.classifier = config.default_rules()
        ctx = CallContext(FN, {"prompt": prompt, "llm_string": llm_string})
        run_steps(self._steps, ctx)
        ctx.trace = Trace(FN, ctx.key, Recorders(cache.recorder, self._stats))
        return ctx

    def _lookup(self, prompt: str, llm_string: str) -> Flow[list[Generation] | None]:
        started = time.perf_counter()
        cache = self.cache
        ctx = self._context(prompt, llm_string, cache)
        policy = None if ctx.policy is None else ctx.policy.value
        if ctx.skip is not None or ctx.key is None:
            level = "warning" if ctx.skip in DEGRADED else "info"
            detail = {"error": ctx.skip_error} if ctx.skip_error else {}
            getattr(ctx.trace, level)("cache.bypass", reason=ctx.skip, **detail)
            ctx.trace.stats.bypass(ctx.skip or "bypass", policy=policy)
            end_call(ctx.trace, "bypass", None, ctx, started, 0.0, 0)
            return None
        hit = (yield from cache.lookup(ctx.key, self._codec, ctx.trace)) if ctx.read else None
        if hit is None:
            ctx.trace.stats.miss(policy)
            end_call(ctx.trace, "miss", None, ctx, started, 0.0, 0)
            return None
        env = hit.envelope
        report_hit(ctx.trace.stats, ctx.trace, hit.tier, policy, started, env.duration_ms,
                   env.saved_tokens, arguments=ctx.arguments)  # fmt: skip
        return list(env.value)

    def _update(self, prompt: str, llm_string: str, value: RETURN_VAL_TYPE) -> Flow[None]:
        cache = self.cache
        ctx = self._context(prompt, llm_string, cache)
        if ctx.skip is None and ctx.write and ctx.key is not None:
            yield from store_value(ctx, cache, self._codec, _Generations(value), 0.0)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return run_sync(self._lookup(prompt, llm_string))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return await run_async(self._lookup(prompt, llm_string))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        run_sync(self._update(prompt, llm_string, return_val))

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await run_async(self._update(prompt, llm_string, return_val))

    def clear(self, **kwargs: Any) -> None:
        """Forget this cache's namespace (other namespaces keep their entries)."""
        self.cache.clear(namespace=self.namespace)

    async def aclear(self, **kwargs: Any) -> None:
        await self.cache.aclear(namespace=self.namespace)
