"""What is measured: the cached function, the hand-rolled baseline, and the trace settings.

Every subject caches the same call, ``chat(PROMPT)`` (``model`` left at its default), whose
answer is `ANSWER`, a 1 kB string. "Explain ..." is a reference prompt: policy LONG, kept in
every tier, so a hit is answered by L1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, TextIO

import cachetools
import orjson
import structlog

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend

__all__ = [
    "ANSWER",
    "MODEL",
    "PROMPT",
    "Tracing",
    "baseline_cached",
    "baseline_key",
    "canonical_hash",
    "conversation",
    "memory_cache",
    "ours",
    "ours_async",
]

PROMPT = "Explain HTTP caching in two short paragraphs."
MODEL = "gpt-4o-mini"
ANSWER = ("HTTP caching keeps a response so the next identical request is answered locally. " * 13)[
    :1024
]


def upstream(prompt: str, model: str = MODEL) -> str:
    """The stand-in LLM: returns at once (the figures are the cache's own cost)."""
    return ANSWER


async def aupstream(prompt: str, model: str = MODEL) -> str:
    return ANSWER


# -- the hand-rolled baseline ---------------------------------------------------------


def baseline_key(*args: Any, **kwargs: Any) -> str:
    """The baseline's key: canonical JSON of the arguments, 128-bit BLAKE2b."""
    payload = json.dumps([args, kwargs], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def baseline_cached(fn: Callable[..., Any], *, maxsize: int = 1000) -> Callable[..., Any]:
    """``cachetools.cached`` over a TTL cache, with a lock (thread-safe, like the library's
    memory tier) and the JSON+BLAKE2b key: what one would write by hand."""
    cache: cachetools.TTLCache[str, Any] = cachetools.TTLCache(maxsize=maxsize, ttl=86400)
    return cachetools.cached(cache, key=baseline_key, lock=threading.Lock())(fn)


def canonical_hash(data: Any) -> str:
    """Serializing and hashing ``data`` as the library's keys do: the size-scaling yardstick."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# -- the library ----------------------------------------------------------------------


def memory_cache() -> MultiLevelCache:
    """The default layout: L1 100 items / 300 s, L2 1,000 items / 3,600 s."""
    return MultiLevelCache(
        [MemoryBackend(maxsize=100, ttl=300), MemoryBackend(maxsize=1000, ttl=3600)]
    )


def ours(cache: MultiLevelCache, fn: Callable[..., Any] = upstream) -> Callable[..., Any]:
    """``fn`` under ``@cache_by_intent(cache=cache)``."""
    decorated: Callable[..., Any] = cache_by_intent(cache=cache)(fn)
    return decorated


def ours_async(cache: MultiLevelCache) -> Callable[..., Any]:
    decorated: Callable[..., Any] = cache_by_intent(cache=cache)(aupstream)
    return decorated


# -- conversations for the size scaling -----------------------------------------------


def conversation(size: int) -> list[dict[str, str]]:
    """Chat messages whose JSON is about ``size`` bytes, ending with a short reference
    question (so the intent is read from a short text, as in a real chat)."""
    turn = "Tell me more about how caches decide what to keep and for how long. " * 7
    messages: list[dict[str, str]] = []
    last = {"role": "user", "content": "Explain the difference between the two."}
    budget = size - len(json.dumps(last)) - 2
    i = 0
    while True:
        role = "user" if i % 2 == 0 else "assistant"
        message = {"role": role, "content": f"{i}: {turn}"}
        cost = len(json.dumps(message)) + 2
        if budget - cost < 0:
            break
        messages.append(message)
        budget -= cost
        i += 1
    if budget > 40:  # pad the last turn to land close to the size asked for
        messages.append({"role": "assistant", "content": "x" * (budget - 40)})
    messages.append(last)
    return messages


def chat_messages(messages: list[dict[str, str]], model: str = MODEL) -> str:
    return ANSWER


# -- trace settings -------------------------------------------------------------------


class Tracing:
    """structlog settings the subjects switch between (structlog's configuration is global).

    ``filtered``: the documented JSON-lines configuration with the level at WARNING, so the
    hit path's debug/info events are dropped by the filtering logger (tracing "off").
    ``json_info`` / ``json_debug``: the five-line set-up of docs/trace.md (stdlib ``json``,
    ISO timestamps, a text file) writing at INFO / DEBUG. ``fast_info`` / ``fast_debug``: the
    production set-up of docs/trace.md (orjson, Unix timestamps, a binary file).
    ``unconfigured``: structlog never configured (the library
    falls back to stdlib logging).
    """

    def __init__(self, text_file: TextIO, bytes_file: BinaryIO) -> None:
        self.text_file = text_file
        self.bytes_file = bytes_file

    def _json(self, level: int) -> None:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(level),
            logger_factory=structlog.WriteLoggerFactory(self.text_file),
        )

    def _fast(self, level: int) -> None:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(),
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(level),
            logger_factory=structlog.BytesLoggerFactory(self.bytes_file),
            cache_logger_on_first_use=True,
        )

    def filtered(self) -> None:
        self._json(logging.WARNING)

    def json_info(self) -> None:
        self._json(logging.INFO)

    def json_debug(self) -> None:
        self._json(logging.DEBUG)

    def fast_info(self) -> None:
        self._fast(logging.INFO)

    def fast_debug(self) -> None:
        self._fast(logging.DEBUG)

    @staticmethod
    def unconfigured() -> None:
        structlog.reset_defaults()
