"""``with observe() as seen``: where each call's answer came from, per call, in threads
and asyncio tasks, with nested calls."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from llm_middleware import MultiLevelCache, cache_by_intent, listeners, observe
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.llm import Counter


def _cached(cache: MultiLevelCache, llm: Counter) -> Any:
    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return llm(prompt)

    return chat


def test_a_miss_then_a_hit(cache: MultiLevelCache, llm: Counter) -> None:
    """The first call ran the function; the repeat is a hit from L1 that saved the first
    call's time; a time-sensitive prompt bypasses the cache."""
    chat = _cached(cache, llm)
    with observe() as first:
        answer = chat("Explain the CAP theorem")
    assert (first.outcome, first.tier, first.policy, first.hit) == ("miss", None, "long", False)
    assert first.similarity is None and first.saved_ms == 0.0
    with observe() as again:
        assert chat("Explain the CAP theorem") == answer
    assert (again.outcome, again.tier, again.policy, again.hit) == ("hit", "L1", "long", True)
    assert again.similarity == 1.0
    assert again.saved_ms == cache_info_saved(chat)
    with observe() as live:
        chat("What is the weather today?")
    assert (live.outcome, live.policy) == ("bypass", "never")
    assert [c.outcome for c in first.calls + again.calls + live.calls] == ["miss", "hit", "bypass"]
    # once the blocks are closed, no block listens (OpenTelemetry may, if a test armed it)
    assert all(listener.__module__ != "llm_middleware.observation" for listener in listeners.ACTIVE)


def cache_info_saved(fn: object) -> float:
    from llm_middleware import cache_info

    return float(cache_info(fn)["saved_ms"])  # type: ignore[arg-type]


def test_nested_calls_each_get_a_record(cache: MultiLevelCache) -> None:
    """A cached function calling another: both are recorded, in the order they started,
    and ``seen`` shows the outermost. Nested blocks each see their own calls."""

    @cache_by_intent(cache=cache)
    def summarize(prompt: str) -> str:
        return f"summary of {prompt}"

    @cache_by_intent(cache=cache)
    def answer(prompt: str) -> str:
        with observe() as inner:
            summary = summarize(f"Explain {prompt}")
        assert [c.function for c in inner.calls] == [summarize_name]
        return f"answer using {summary}"

    summarize_name = f"{summarize.__module__}.{summarize.__qualname__}"
    answer_name = f"{answer.__module__}.{answer.__qualname__}"
    summarize("Explain B-trees")  # the inner call will be a hit
    with observe() as seen:
        answer("B-trees")
    assert [c.function for c in seen.calls] == [answer_name, summarize_name]
    assert [c.outcome for c in seen.calls] == ["miss", "hit"]
    assert (seen.outcome, seen.policy) == ("miss", "short")
    assert seen.calls[0].duration_ms >= seen.calls[1].duration_ms
    with observe() as seen:
        answer("B-trees")  # now the outer call is a hit: the inner one does not run
    assert [c.outcome for c in seen.calls] == ["hit"]


def test_threads_see_only_their_own_calls(cache: MultiLevelCache, llm: Counter) -> None:
    """Blocks in concurrent threads record only the calls of their own thread."""
    chat = _cached(cache, llm)
    chat("Explain quorum reads")
    start = threading.Barrier(8)
    seen: dict[int, tuple[str | None, int]] = {}

    def worker(n: int) -> None:
        start.wait()
        with observe() as mine:
            chat("Explain quorum reads" if n % 2 else f"Explain topic {n}")
        seen[n] = (mine.outcome, len(mine.calls))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {n: ("hit" if n % 2 else "miss", 1) for n in range(8)}


def test_asyncio_tasks_created_in_the_block_are_seen(cache: MultiLevelCache) -> None:
    """Tasks created inside a block (they copy its context) are recorded there; a task
    created outside it, running meanwhile with its own block, is not."""

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        await asyncio.sleep(0)
        return f"re: {prompt}"

    async def alone() -> str | None:
        with observe() as mine:
            await chat("Explain Raft")
        return mine.outcome

    async def main() -> tuple[list[str], str | None]:
        await chat("Explain Paxos")
        other = asyncio.create_task(alone())
        with observe() as seen:
            await asyncio.gather(chat("Explain Paxos"), chat("Explain Paxos"))
        return [c.outcome for c in seen.calls], await other

    outcomes, outcome_alone = asyncio.run(main())
    assert outcomes == ["hit", "hit"]  # the other task's call is not in this block
    assert outcome_alone == "miss"


def test_embeddings_and_langchain_calls_are_observed(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """`wrap_openai`'s embeddings (one record per input) and LangChain's `IntentCache`
    tell an observe() block where each answer came from, as decorated functions do."""
    pytest.importorskip("openai")
    pytest.importorskip("langchain_core")
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from openai import OpenAI

    from llm_middleware.langchain import IntentCache
    from llm_middleware.openai import wrap_openai

    client = wrap_openai(OpenAI(base_url=openai_server.base_url, api_key="sk-test"), cache=cache)
    with observe() as first:
        client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    with observe() as again:
        client.embeddings.create(model="text-embedding-3-small", input=["beta", "gamma"])
    assert [(c.outcome, c.policy) for c in first.calls] == [("miss", "long")] * 2
    assert sorted((c.outcome, c.tier) for c in again.calls) == [("hit", "L1"), ("miss", None)]

    model = FakeListChatModel(responses=["A B-tree keeps sorted keys in wide nodes."])
    model.cache = IntentCache(cache=cache, namespace="lc")
    with observe() as asked:
        answer = model.invoke("Explain B-trees")
    with observe() as repeated:
        assert model.invoke("Explain B-trees").content == answer.content
    with observe() as live:
        model.invoke("What is the weather today?")
    assert (asked.outcome, asked.policy) == ("miss", "long")
    assert (repeated.outcome, repeated.tier, repeated.policy) == ("hit", "L1", "long")
    assert (live.outcome, live.policy) == ("bypass", "never")
