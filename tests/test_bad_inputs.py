"""Bad inputs, one test each, with the outcome a user sees (see docs/failures.md)."""

from __future__ import annotations

import gc
import io
import math
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from llm_middleware import (
    CachePolicy,
    ConfigurationError,
    DecorationError,
    IntentRules,
    LLMMiddlewareError,
    MultiLevelCache,
    backend_from_url,
    cache_by_intent,
    configure,
    load_backend,
)
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.config import TIERS_ENV

from .support.llm import Counter

Events = list[MutableMapping[str, Any]]


def bypasses(events: Events) -> list[tuple[object, object]]:
    return [(e["reason"], e["log_level"]) for e in events if e["event"] == "cache.bypass"]


def outcomes(events: Events) -> list[object]:
    return [e["outcome"] for e in events if e["event"] == "cache.result"]


def stored(cache: MultiLevelCache) -> int:
    return sum(len(cast(MemoryBackend, b)) for b in cache.backends)


class Opaque:
    """An object with no JSON form."""


# -- arguments and results the cache cannot handle: the call still works --------------


@pytest.mark.parametrize(
    "argument",
    [
        Opaque(),
        b"raw bytes",
        lambda: None,
        io.StringIO("a file"),
        threading.Lock(),
        {"nested": [1, {"deep": Opaque()}]},
        {1, "mixed set"},
        math.nan,
        10**5000,  # beyond Python's int-to-text limit
    ],
    ids=["object", "bytes", "lambda", "file", "lock", "nested", "mixed_set", "nan", "huge_int"],
)
def test_unserializable_argument_runs_uncached_with_a_warning(
    cache: MultiLevelCache, llm: Counter, argument: object
) -> None:
    """An argument with no canonical form: every call reaches the function, a warning says why."""
    handles: list[object] = []

    @cache_by_intent(cache=cache)
    def chat(prompt: str, handle: object) -> str:
        handles.append(handle)
        return llm(prompt)

    with capture_logs() as events:
        assert chat("Explain handles", argument) == "answer #1 to Explain handles"
        assert chat("Explain handles", argument) == "answer #2 to Explain handles"
    assert bypasses(events) == [("unkeyable_argument", "warning")] * 2
    assert outcomes(events) == ["bypass", "bypass"]
    assert handles == [argument, argument] and llm.calls == 2 and stored(cache) == 0


@pytest.mark.parametrize(
    "result",
    [Opaque(), (1, 2), {1: "int keys"}, {"a": (1,)}, {"a", "set"}, b"bytes", math.inf],
    ids=["object", "tuple", "int_keys", "nested_tuple", "set", "bytes", "inf"],
)
def test_unserializable_result_is_returned_as_is_and_not_stored(
    cache: MultiLevelCache, llm: Counter, result: object
) -> None:
    """A result that would not come back equal is returned unchanged, with a warning, unstored."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> Any:
        llm(prompt)
        return result

    with capture_logs() as events:
        assert chat("Explain results") is result
        assert chat("Explain results") is result
    assert llm.calls == 2 and stored(cache) == 0
    assert bypasses(events) == [("unsupported_result", "warning")] * 2
    assert outcomes(events) == ["miss", "miss"]


def test_none_result_is_returned_and_not_stored(cache: MultiLevelCache, llm: Counter) -> None:
    """A ``None`` answer is returned; the next call asks again (nothing was stored)."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str | None:
        llm(prompt)
        return None

    with capture_logs() as events:
        assert chat("Explain nothing") is None
        assert chat("Explain nothing") is None
    assert llm.calls == 2 and stored(cache) == 0
    assert [reason for reason, _ in bypasses(events)] == ["unsupported_result"] * 2


def _returns_a_generator(cache: MultiLevelCache) -> Callable[[str], Iterator[str]]:
    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> Iterator[str]:
        return iter(["chunk 1", "chunk 2", prompt])

    return chat


def _is_a_generator(cache: MultiLevelCache) -> Callable[[str], Iterator[str]]:
    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> Iterator[str]:
        yield "chunk 1"
        yield "chunk 2"
        yield prompt

    return chat


@pytest.mark.parametrize("make", [_returns_a_generator, _is_a_generator])
def test_generator_result_stays_iterable_and_is_not_stored(
    cache: MultiLevelCache, make: Callable[[MultiLevelCache], Callable[[str], Iterator[str]]]
) -> None:
    """A generator is handed back unconsumed: the caller iterates it all; nothing is stored."""
    chat = make(cache)
    with capture_logs() as events:
        first, second = chat("Explain streams"), chat("Explain streams")
    assert list(first) == ["chunk 1", "chunk 2", "Explain streams"]
    assert list(second) == ["chunk 1", "chunk 2", "Explain streams"]
    assert first is not second and stored(cache) == 0
    assert [reason for reason, _ in bypasses(events)] == ["unsupported_result"] * 2


def test_async_generator_result_stays_iterable_and_is_not_stored(cache: MultiLevelCache) -> None:
    """An async generator function still streams to the caller; nothing is stored."""
    import asyncio

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> AsyncIterator[str]:
        yield "chunk"
        yield prompt

    async def drain() -> list[str]:
        return [chunk async for chunk in chat("Explain streams")]

    assert asyncio.run(drain()) == ["chunk", "Explain streams"]
    assert stored(cache) == 0


# -- prompts that are big or not text -------------------------------------------------


def test_a_50_mb_prompt_is_answered_and_cached_in_bounded_memory(llm: Counter) -> None:
    """A 50 MB prompt is answered once, then served from the cache, without holding copies."""
    cache = MultiLevelCache([MemoryBackend(maxsize=10), MemoryBackend(maxsize=10)])

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return llm(f"summarize {len(prompt)} characters")  # a short answer to a long prompt

    prompt = "Explain this attachment: " + "x" * 50_000_000
    size = len(prompt)
    gc.collect()
    tracemalloc.start()
    try:
        assert chat(prompt) == f"answer #1 to summarize {size} characters"
        assert chat(prompt) == f"answer #1 to summarize {size} characters"
        _, peak = tracemalloc.get_traced_memory()
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert llm.calls == 1
    assert peak < 3 * size  # transient copies only (canonical JSON, its UTF-8 bytes)
    assert retained < 1_000_000  # nothing proportional to the prompt is kept


def test_a_prompt_of_only_image_parts_gets_the_default_policy_and_is_cached(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """Messages whose last user turn has no text are classified by the default rule, cached."""

    @cache_by_intent(cache=cache)
    def chat(messages: list[dict[str, Any]]) -> str:
        return llm("describe " + messages[-1]["content"][0]["image_url"]["url"])

    def image(url: str) -> list[dict[str, Any]]:
        return [
            {"role": "system", "content": "Explain every picture in detail."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]},
        ]

    one, another = "data:image/png;base64,AAAA", "data:image/png;base64,BBBB"
    with capture_logs() as events:
        assert chat(image(one)) == f"answer #1 to describe {one}"
        assert chat(image(one)) == f"answer #1 to describe {one}"
    policies = [(e["policy"], e["rule"]) for e in events if e["event"] == "cache.policy"]
    assert policies == [(CachePolicy.SHORT.value, "default")] * 2
    assert outcomes(events) == ["miss", "hit"]
    assert chat(image(another)) == f"answer #2 to describe {another}"


# -- misuse: raises at once, with a message that says what to do -----------------------


class _Assistant:
    def ask(self, question: str) -> str:
        return question

    @classmethod
    def ask_class(cls, question: str) -> str:
        return question


async def _ask_async(question: str, model: str = "m") -> str:
    return question


def _no_arguments() -> str:
    return "?"


@pytest.mark.parametrize(
    ("target", "suggested"),
    [
        (_Assistant.__dict__["ask"], "question"),
        (_Assistant.__dict__["ask_class"], "question"),
        (_ask_async, "question"),
        (_no_arguments, "question"),
        (lambda text, *, user: text, "text"),
    ],
    ids=["method", "classmethod", "async", "no_arguments", "lambda"],
)
def test_decorating_a_function_without_a_prompt_says_which_argument_to_name(
    target: Any, suggested: str
) -> None:
    """No prompt argument: `DecorationError` (a `TypeError`) that says to pass ``prompt_arg=``."""
    with pytest.raises(DecorationError) as info:
        cache_by_intent(target)
    assert isinstance(info.value, TypeError) and isinstance(info.value, LLMMiddlewareError)
    assert f"prompt_arg={suggested!r}" in str(info.value)
    assert "self" not in str(info.value).split("prompt_arg=")[1]


UNKNOWN_URLS = ["nosuch://host", "memcache://127.0.0.1:11211", "memory-lru://?maxsize=3"]


@pytest.mark.parametrize("url", UNKNOWN_URLS)
def test_unknown_backend_url_lists_the_registered_names(url: str) -> None:
    """An unknown scheme: `ConfigurationError` listing the registered backends, wherever given."""
    for configure_it in (
        lambda: backend_from_url(url),
        lambda: configure(tiers=f"memory://;{url}"),
        lambda: configure(tiers=[url]),
    ):
        with pytest.raises(ConfigurationError, match="registered backends: ") as info:
            configure_it()
        listed = str(info.value).split("registered backends: ")[1].split(", ")
        assert {"memory", "memcached"} <= set(listed)


def test_unknown_backend_in_the_environment_fails_the_first_call_loudly(
    monkeypatch: pytest.MonkeyPatch, llm: Counter
) -> None:
    """A bad ``LLM_MIDDLEWARE_TIERS`` raises `ConfigurationError` on use; nothing is called."""
    monkeypatch.setenv(TIERS_ENV, "memory://;nosuch://host")

    @cache_by_intent
    def chat(prompt: str) -> str:
        return llm(prompt)

    with pytest.raises(ConfigurationError, match=r"registered backends: .*memory"):
        chat("Explain configuration")
    assert llm.calls == 0


@pytest.mark.parametrize(
    ("make", "valid"),
    [
        (lambda: backend_from_url("memory://?max_size=5"), "maxsize, shared, timer, ttl"),
        (lambda: load_backend("memory", ttl_seconds=5), "maxsize, shared, timer, ttl"),
        (lambda: configure(tiers="memory://?maxsize=5&tll=60"), "maxsize, shared, timer, ttl"),
        (lambda: backend_from_url("memcached://127.0.0.1:11211?timeout_ms=5"), "timeout"),
    ],
    ids=["url", "load_backend", "configure", "memcached_url"],
)
def test_bad_option_name_lists_the_valid_options(make: Callable[[], object], valid: str) -> None:
    """A misspelled option: `ConfigurationError` naming the valid options, before any I/O."""
    with pytest.raises(ConfigurationError, match="valid options: ") as info:
        make()
    assert valid in str(info.value)


@pytest.mark.parametrize("seconds", ["0", "-60", "nan"])
def test_zero_or_negative_ttl_in_a_rules_file_is_refused(tmp_path: Path, seconds: str) -> None:
    """Operators' rules files with a zero, negative or NaN lifetime fail to load, clearly."""
    path = tmp_path / "rules.toml"
    path.write_text(f'extends = "default"\n[ttl]\nlong = {seconds}\n')
    with pytest.raises(ConfigurationError, match="positive"):
        IntentRules.from_file(path)


@pytest.mark.parametrize("seconds", [0, -1, -0.5, math.nan])
def test_zero_or_negative_ttl_in_rules_is_refused(seconds: float) -> None:
    """`IntentRules(ttl=...)` and a tier's ``ttl`` refuse lifetimes that are not positive."""
    with pytest.raises(ConfigurationError, match="positive"):
        IntentRules([], ttl={CachePolicy.MEDIUM: seconds})
    if not math.isnan(seconds):
        with pytest.raises(ConfigurationError, match="ttl must be positive"):
            backend_from_url(f"memory://?ttl={seconds}")


def test_a_sub_second_ttl_is_refused_or_kept_never_truncated_to_zero() -> None:
    """A lifetime of 0.5 s either raises `ConfigurationError` or caches; it never disables."""
    try:
        rules = IntentRules([], default=CachePolicy.LONG, ttl={CachePolicy.LONG: 0.5})
    except ConfigurationError:
        return
    assert rules.classify("anything").ttl > 0


@pytest.mark.parametrize("seconds", [math.inf, "600", None])
def test_an_unusable_ttl_in_rules_is_a_configuration_error(seconds: object) -> None:
    """An infinite lifetime, or one that is not a number, raises `ConfigurationError`."""
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        IntentRules([], ttl={CachePolicy.LONG: seconds})  # type: ignore[dict-item]


def test_an_infinite_ttl_in_a_rules_file_is_a_configuration_error(tmp_path: Path) -> None:
    """``long = inf`` in a rules file fails to load with `ConfigurationError`."""
    path = tmp_path / "rules.toml"
    path.write_text("[ttl]\nlong = inf\n")
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        IntentRules.from_file(path)
