"""Repeated hits take a short path: the answers, counters and events stay those of a hit.

These run with structlog at INFO (debug events unwanted), the setting in which a
repeated call of scalar arguments or of plain JSON data (chat messages) is answered
straight from tier 1.
"""

from __future__ import annotations

import asyncio
import threading
from enum import Enum
from typing import Any

import pytest

from llm_middleware import (
    CachePolicy,
    IntentRules,
    MultiLevelCache,
    Rule,
    bypass,
    cache_by_intent,
    configure,
    refresh,
    use_policy,
)
from llm_middleware.argkey import MEMO_DATA
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.testing import FakeClock

from .support.llm import Counter


def _results(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "cache.result"]


def test_repeated_hits_count_and_report_like_the_first(
    cache: MultiLevelCache, llm: Counter, info_events: list[dict[str, Any]]
) -> None:
    """Every hit -- the first, and the repeats -- has its counter and its result event."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    answers = [chat("Explain quicksort") for _ in range(4)]
    assert len(set(answers)) == 1 and llm.calls == 1
    miss, *hits = _results(info_events)
    assert miss["outcome"] == "miss"
    for hit in hits:
        assert hit["outcome"] == "hit" and hit["tier"] == "L1" and hit["policy"] == "long"
        assert hit["key"] == miss["key"] and hit["fn"] == miss["fn"]
        assert hit["saved_ms"] >= 0 and hit["saved_tokens"] == 0
    assert len({e["call_id"] for e in _results(info_events)}) == 4
    info = chat.cache_info()  # type: ignore[attr-defined]
    assert (info["hits"], info["misses"]) == ({"L1": 3}, 1)
    assert cache.stats()["hits"] == {"L1": 3}


def test_new_rules_apply_to_a_prompt_already_answered(
    cache: MultiLevelCache, llm: Counter, info_events: list[dict[str, Any]]
) -> None:
    """``configure(rules=...)`` takes effect for the very next call of a cached prompt."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    chat("Explain DNS")
    chat("Explain DNS")
    assert llm.calls == 1
    configure(rules=IntentRules([Rule(CachePolicy.NEVER, words=["explain"])]))
    chat("Explain DNS")
    chat("Explain DNS")
    assert llm.calls == 3
    assert _results(info_events)[-1]["outcome"] == "bypass"


def test_controls_apply_to_a_prompt_already_answered(
    cache: MultiLevelCache, llm: Counter, info_events: list[dict[str, Any]]
) -> None:
    """``bypass``, ``refresh`` and ``use_policy`` act on a prompt with a stored answer."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    first = chat("Explain NAT")
    assert chat("Explain NAT") == first
    with bypass():
        assert chat("Explain NAT") != first
    with use_policy(CachePolicy.NEVER):
        assert chat("Explain NAT") != first
    with refresh():
        fresh = chat("Explain NAT")
    assert fresh != first and chat("Explain NAT") == fresh
    assert llm.calls == 4


def test_an_answer_expired_in_l1_comes_from_l2(
    cache: MultiLevelCache, clock: FakeClock, llm: Counter, info_events: list[dict[str, Any]]
) -> None:
    """Past L1's cap the repeat is answered by L2 and promoted back into L1."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    chat("Explain TCP")
    chat("Explain TCP")
    clock.advance(301)
    chat("Explain TCP")
    chat("Explain TCP")
    assert llm.calls == 1
    assert [e["tier"] for e in _results(info_events)] == [None, "L1", "L2", "L1"]
    assert cache.stats()["promotions"] == 1


class _Flaky(MemoryBackend):
    """A memory tier whose reads can be made to fail; counts them."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(timer=clock)
        self.reads = 0
        self.failing = False

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        if self.failing:
            raise ConnectionError("tier down")
        return super().get(key)


def test_a_failing_first_tier_is_read_once_per_call(
    clock: FakeClock, llm: Counter, info_events: list[dict[str, Any]]
) -> None:
    """A tier that fails is asked once per call, and its error is reported once."""
    flaky = _Flaky(clock)
    cache = MultiLevelCache([flaky, MemoryBackend(timer=clock)], timer=clock)
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    answer = chat("Explain UDP")
    flaky.failing = True
    reads = flaky.reads
    assert chat("Explain UDP") == answer  # from L2
    assert flaky.reads == reads + 1
    errors = [e for e in info_events if e["event"] == "cache.error"]
    assert len(errors) == 1 and errors[0]["tier"] == "L1"
    assert _results(info_events)[-1]["tier"] == "L2"


def test_scalar_arguments_of_equal_value_keep_their_own_answers(
    cache: MultiLevelCache, info_events: list[dict[str, Any]]
) -> None:
    """1, 1.0 and True are equal in Python but are different arguments."""
    chat = cache_by_intent(cache=cache)(lambda prompt, n: f"{prompt} {n!r}")
    for _ in range(2):
        assert [chat("Explain", n) for n in (1, 1.0, True)] == [
            "Explain 1",
            "Explain 1.0",
            "Explain True",
        ]
        assert [chat("Explain", n=n) for n in (True, 1.0, 1)] == [
            "Explain True",
            "Explain 1.0",
            "Explain 1",
        ]


def test_async_repeated_hits(
    cache: MultiLevelCache, llm: Counter, info_events: list[dict[str, Any]]
) -> None:
    """The async short path answers, counts and reports like the sync one."""

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        return llm(prompt)

    async def main() -> list[str]:
        return [await chat("Explain asyncio") for _ in range(3)]

    assert asyncio.run(main()) == ["answer #1 to Explain asyncio"] * 3
    assert llm.calls == 1
    assert [e["outcome"] for e in _results(info_events)] == ["miss", "hit", "hit"]
    assert chat.cache_info()["hits"] == {"L1": 2}  # type: ignore[attr-defined]


def test_a_mutated_default_is_read_at_each_call(
    cache: MultiLevelCache, info_events: list[dict[str, Any]]
) -> None:
    """A function whose default is a mutable object keys on its current content."""
    options: dict[str, Any] = {"temperature": 0}

    @cache_by_intent(cache=cache)
    def chat(prompt: str, opts: dict[str, Any] = options) -> str:
        return f"{prompt} at {opts['temperature']}"

    assert chat("Explain") == chat("Explain") == "Explain at 0"
    options["temperature"] = 1
    assert chat("Explain") == "Explain at 1"


def test_hits_from_many_threads_are_all_counted(cache: MultiLevelCache, llm: Counter) -> None:
    """Hit counters stay exact when threads hit at once (thousands of hits)."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    chat("Explain threads")

    def hammer() -> None:
        for _ in range(700):
            chat("Explain threads")

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert llm.calls == 1
    assert chat.cache_info()["hits"] == {"L1": 4200}  # type: ignore[attr-defined]
    assert cache.stats()["hits"] == {"L1": 4200}


def test_conversation_hits_count_report_and_obey_controls(
    cache: MultiLevelCache, llm: Counter, info_events: list[dict[str, Any]]
) -> None:
    """Calls of chat messages hit, count and report alike, and obey the controls."""

    @cache_by_intent(cache=cache)
    def chat(messages: list[dict[str, str]]) -> str:
        return llm(messages[-1]["content"])

    messages = [{"role": "user", "content": "Explain DNS"}]
    assert chat(messages) == chat(messages) == chat(list(messages)) == "answer #1 to Explain DNS"
    with refresh():
        assert chat(messages) == "answer #2 to Explain DNS"
    with use_policy(CachePolicy.NEVER):
        assert chat(messages) == "answer #3 to Explain DNS"
    assert chat(messages) == "answer #2 to Explain DNS"
    assert [e["outcome"] for e in _results(info_events)] == [
        "miss", "hit", "hit", "miss", "bypass", "hit",
    ]  # fmt: skip
    assert chat.cache_info()["hits"] == {"L1": 3}  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [100, MEMO_DATA + 100], ids=["digested", "over-the-digest-limit"])
def test_a_conversation_changed_in_place_is_asked_anew(
    cache: MultiLevelCache, llm: Counter, size: int
) -> None:
    """Conversations are known by their content, not by the list object: a turn
    appended to the same list is a new question, and taking it back is the old one."""
    chat = cache_by_intent(cache=cache)(lambda messages: llm(messages[-1]["content"]))
    messages = [{"role": "user", "content": "Explain DNS " + "x" * size}]
    first = chat(messages)
    assert chat(messages) == first and llm.calls == 1
    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": "Why?"}]
    second = chat(messages)
    assert second != first and chat(messages) == second and llm.calls == 2
    messages[-1]["content"] = "Explain why"
    assert chat(messages) not in (first, second) and llm.calls == 3
    del messages[1:]
    assert chat(messages) == first and llm.calls == 3


class Tone(Enum):
    CALM = "calm"


def test_values_json_cannot_show_never_take_a_plain_answer(
    cache: MultiLevelCache, llm: Counter, info_events: list[dict[str, Any]]
) -> None:
    """NaN (which JSON writes as null) and an Enum (written as its value) are not the
    plain values they resemble: such calls run uncached, never answered by the entry
    of the look-alike conversation."""
    chat = cache_by_intent(cache=cache)(lambda messages: llm(messages[0]["content"]))
    plain = [{"role": "user", "content": "Explain DNS", "weight": None, "tone": "calm"}]
    first = chat(plain)
    assert chat(plain) == first
    nan = [{**plain[0], "weight": float("nan")}]
    enum = [{**plain[0], "tone": Tone.CALM}]
    for _ in range(2):
        assert chat(nan) != first and chat(enum) != first
    assert llm.calls == 5
    results = _results(info_events)
    assert [e["outcome"] for e in results] == ["miss", "hit"] + ["bypass"] * 4
    bypasses = [e["reason"] for e in info_events if e["event"] == "cache.bypass"]
    assert bypasses == ["unkeyable_argument"] * 4


def test_instances_with_a_cache_key_keep_their_own_answers(
    cache: MultiLevelCache, info_events: list[dict[str, Any]]
) -> None:
    """A method's hits follow ``__cache_key__``: two personas never share answers."""

    class Bot:
        def __init__(self, persona: str) -> None:
            self.persona = persona

        def __cache_key__(self) -> str:
            return self.persona

        @cache_by_intent(cache=cache)
        def chat(self, prompt: str) -> str:
            return f"{self.persona}: {prompt}"

    pirate, poet = Bot("pirate"), Bot("poet")
    for _ in range(2):
        assert pirate.chat("Explain tides") == "pirate: Explain tides"
        assert poet.chat("Explain tides") == "poet: Explain tides"
    assert [e["outcome"] for e in _results(info_events)] == ["miss", "miss", "hit", "hit"]


def test_a_configured_classifier_is_asked_at_every_call(
    cache: MultiLevelCache, llm: Counter, info_events: list[dict[str, Any]]
) -> None:
    """A classifier set by ``configure(rules=...)`` decides every call, even repeated ones."""
    verdict = CachePolicy.LONG
    configure(rules=lambda prompt: verdict)
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    assert chat("hello") == chat("hello") == "answer #1 to hello"
    verdict = CachePolicy.NEVER
    assert chat("hello") == "answer #2 to hello"


def test_arguments_that_do_not_fit_raise_before_the_cache_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call missing an argument raises the function's own TypeError, even when the
    default cache could not be built."""
    monkeypatch.setenv("LLM_MIDDLEWARE_TIERS", "nosuch://x")

    @cache_by_intent
    def chat(prompt: str) -> str:
        return prompt

    with pytest.raises(TypeError):
        chat()  # type: ignore[call-arg]
