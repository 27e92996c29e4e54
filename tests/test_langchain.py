"""`IntentCache` passes LangChain's standard cache suites and caches a real chat model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.caches import BaseCache
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_tests.integration_tests import (
    AsyncCacheTestSuite,
    SyncCacheTestSuite,
)
from structlog.testing import capture_logs

from llm_middleware import MultiLevelCache
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.langchain import IntentCache
from llm_middleware.testing import FakeClock


def tiers(clock: FakeClock) -> MultiLevelCache:
    return MultiLevelCache(
        [MemoryBackend(maxsize=100, ttl=300, timer=clock), MemoryBackend(timer=clock)],
        timer=clock,
    )


class TestIntentCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self) -> BaseCache:
        return IntentCache(tiers(FakeClock(1_000_000.0)))


@pytest.mark.asyncio
class TestIntentCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    def cache(self) -> BaseCache:
        return IntentCache(tiers(FakeClock(1_000_000.0)))


class Model:
    """A LangChain fake chat model over an IntentCache; ``answers`` counts its calls."""

    def __init__(self, cache: BaseCache, answers: int = 6) -> None:
        self.model = FakeListChatModel(
            responses=[f"answer #{n}" for n in range(1, answers + 1)], cache=cache
        )

    def ask(self, prompt: str) -> str:
        return str(self.model.invoke(prompt).content)

    @property
    def calls(self) -> int:
        return self.model.i


def test_chat_model_hit_is_the_first_answer(clock: FakeClock) -> None:
    model = Model(IntentCache(tiers(clock)))
    first = model.ask("Explain the CAP theorem")
    with capture_logs() as events:
        again = model.ask("Explain the CAP theorem")
    assert (first, again, model.calls) == ("answer #1", "answer #1", 1)
    result = [e for e in events if e["event"] == "cache.result"][-1]
    assert (result["outcome"], result["policy"], result["fn"]) == (
        "hit",
        "long",
        "langchain.llm_cache",
    )


def test_never_prompts_reach_the_model_every_time(clock: FakeClock) -> None:
    model = Model(IntentCache(tiers(clock)))
    with capture_logs() as events:
        answers = [model.ask("What is the latest news?") for _ in range(2)]
    assert answers == ["answer #1", "answer #2"]
    assert [e["reason"] for e in events if e["event"] == "cache.bypass"] == ["policy_never"] * 2


def test_namespaces_are_isolated_and_cleared_alone(clock: FakeClock) -> None:
    shared = tiers(clock)
    alpha, beta = IntentCache(shared, namespace="alpha"), IntentCache(shared, namespace="beta")
    first, second = Model(alpha), Model(beta)
    assert first.ask("Explain Raft") == second.ask("Explain Raft") == "answer #1"
    assert (first.calls, second.calls) == (1, 1)  # no sharing across namespaces
    alpha.clear()
    assert first.ask("Explain Raft") == "answer #2"  # alpha forgot
    assert second.ask("Explain Raft") == "answer #1"  # beta kept its entry


def test_set_llm_cache_caches_every_model(clock: FakeClock) -> None:
    set_llm_cache(IntentCache(tiers(clock)))
    try:
        model = FakeListChatModel(responses=["one", "two"])
        answers = [model.invoke("Define a Bloom filter").content for _ in range(2)]
        assert answers == ["one", "one"]
        again = asyncio.run(model.ainvoke("Define a Bloom filter"))
        assert again.content == "one"
    finally:
        set_llm_cache(None)


def test_chat_generations_round_trip_type_exact(clock: FakeClock) -> None:
    cache = IntentCache(tiers(clock))
    message = AIMessage(content="hi", response_metadata={"model": "m"}, id="run-1")
    stored: list[Any] = [ChatGeneration(message=message), Generation(text="plain")]
    cache.update("Explain DNS", "llm", stored)
    back = cache.lookup("Explain DNS", "llm")
    assert back == stored and [type(g) for g in back or []] == [ChatGeneration, Generation]
    assert type(back[0].message) is AIMessage  # type: ignore[union-attr,index]
