"""Calls made later than, or on behalf of, their caller -- a stale refresh, the one upstream
call concurrent callers share, a call made after waiting on another process's lock -- run
on the arguments as they were when the key was made; one-shot results are never shared;
an answer a cancelled leader's followers received is stored all the same."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from llm_middleware import MultiLevelCache, StampedeLock, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.testing import FakeClock

from .support.llm import Counter

Chat = list[dict[str, str]]


def text(history: Chat) -> str:
    """A conversation as the stand-in LLM is asked it: its whole content, read at once
    (what it was asked is what the call read)."""
    return " / ".join(message["content"] for message in history)


def opening() -> Chat:
    return [{"role": "user", "content": "Summarize the report"}]


def follow_up(history: Chat, answer: str) -> None:
    """What a chat loop does with an answer: the conversation goes on, in place."""
    history.append({"role": "assistant", "content": answer})
    history.append({"role": "user", "content": "Now in French"})


@pytest.fixture
def one_tier(clock: FakeClock) -> MultiLevelCache:
    """One uncapped memory tier: a tier's own cap would end the grace window early."""
    return MultiLevelCache([MemoryBackend(maxsize=100, timer=clock)], timer=clock)


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the background call did not finish"
        time.sleep(0.005)


def test_async_stale_refresh_reads_the_arguments_as_they_were(
    one_tier: MultiLevelCache, clock: FakeClock, llm: Counter
) -> None:
    """The chat loop appends to ``history`` right after a stale answer: the refresh,
    which runs once the caller yields, still answers the conversation the key stands
    for, and that is what the old conversation is served afterwards."""

    @cache_by_intent(cache=one_tier, stale_ttl=600)
    async def chat(messages: Chat) -> str:
        return llm(text(messages))

    async def scenario() -> str:
        history = opening()
        await chat(history)
        clock.advance(301)  # SHORT: 300 s, now stale
        follow_up(history, await chat(history))  # stale: a refresh is scheduled
        for _ in range(1000):  # the refresh runs as soon as we yield
            if llm.calls == 2:
                break
            await asyncio.sleep(0.001)
        for _ in range(100):  # and stores right after its call
            answer = await chat(opening())
            if answer.startswith("answer #2 "):
                break
            await asyncio.sleep(0.001)
        return answer

    assert asyncio.run(scenario()) == f"answer #2 to {text(opening())}"
    assert llm.prompts[1] == text(opening())


def test_sync_stale_refresh_reads_the_arguments_as_they_were(
    one_tier: MultiLevelCache, clock: FakeClock, llm: Counter
) -> None:
    """In threads the refresh may read its arguments after the caller changed them:
    it reads a snapshot instead."""
    read = threading.Event()

    @cache_by_intent(cache=one_tier, stale_ttl=600)
    def chat(messages: Chat) -> str:
        if llm.calls:  # the refresh: it reads its arguments only once the caller moved on
            read.wait(5)
        return llm(text(messages))

    history = opening()
    chat(history)
    clock.advance(301)
    follow_up(history, chat(history))
    read.set()
    wait_until(lambda: llm.calls == 2)
    assert llm.prompts[1] == text(opening())
    wait_until(lambda: chat(opening()).startswith("answer #2 "))
    assert chat(opening()) == f"answer #2 to {text(opening())}"


def test_async_stale_refresh_through_wrap_openai_answers_the_old_conversation(
    openai_server: Any,
) -> None:
    """The same through ``wrap_openai(AsyncOpenAI(), stale_ttl=...)``."""
    openai = pytest.importorskip("openai")
    from llm_middleware.openai import wrap_openai

    clock = FakeClock(1_000_000.0)
    cache = MultiLevelCache([MemoryBackend(maxsize=100, timer=clock)], timer=clock)
    client = openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="t", max_retries=0)
    cached = wrap_openai(client, cache=cache, stale_ttl=600)

    async def scenario() -> list[Any]:
        messages = opening()
        await cached.chat.completions.create(model="gpt-test", messages=messages)
        clock.advance(301)
        stale = await cached.chat.completions.create(model="gpt-test", messages=messages)
        follow_up(messages, stale.choices[0].message.content)
        for _ in range(1000):
            if openai_server.calls == 2:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the refresh stores right after its call
        await client.close()
        return openai_server.requests

    requests = asyncio.run(scenario())
    assert [r["messages"] for r in requests] == [opening(), opening()]


def test_shared_call_reads_the_arguments_as_they_were(cache: MultiLevelCache, llm: Counter) -> None:
    """Another thread of the application changes the leader's ``history`` while its
    call waits: the call, whose answer is shared and stored, still answers the
    content the key stands for."""
    release = threading.Event()
    answer = f"answer #1 to {text(opening())}"

    @cache_by_intent(cache=cache)
    def chat(messages: Chat) -> str:
        release.wait(5)
        return llm(text(messages))

    history = opening()
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(chat, history)
        wait_until(lambda: not release.is_set() and leader.running())
        time.sleep(0.05)  # the leader is inside its call
        follower = pool.submit(chat, opening())
        time.sleep(0.05)  # the follower waits on the leader's call
        follow_up(history, "(typed meanwhile)")
        release.set()
        assert follower.result(5) == answer
        assert leader.result(5) == answer
    assert llm.prompts[0] == text(opening())
    assert chat(opening()) == answer


class LockingMemory(MemoryBackend):
    """A memory tier with an atomic ``add``: it can hold a cross-process lock. It tells
    when a key has been read (the key was made: the caller is waiting on the lock)."""

    def __init__(self, timer: FakeClock) -> None:
        super().__init__(maxsize=100, timer=timer)
        self.guard = threading.Lock()
        self.read = threading.Event()

    def get(self, key: str) -> bytes | None:
        self.read.set()
        return super().get(key)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self.guard:
            if super().get(key) is not None:
                return False
            self.set(key, value, ttl)
            return True


def test_call_after_waiting_on_a_lock_reads_the_arguments_as_they_were(
    clock: FakeClock, llm: Counter
) -> None:
    """A caller waits on another process's lock; meanwhile its ``history`` changes;
    when the lock is gone it calls, on the content its key stands for."""
    tier = LockingMemory(clock)
    cache = MultiLevelCache([tier], timer=clock)

    @cache_by_intent(cache=cache, lock=StampedeLock(wait=1.0, poll=0.01))
    def chat(messages: Chat) -> str:
        return llm(text(messages))

    key_probe: list[str] = []
    original_add = tier.add

    def add(key: str, value: bytes, ttl: float) -> bool:
        key_probe.append(key)
        return original_add(key, value, ttl)

    tier.add = add  # type: ignore[method-assign]
    history = opening()
    chat(opening())  # learn the key, then forget the answer
    lock_key = key_probe[0]
    tier.delete(lock_key.removesuffix(":lock"))
    tier.set(lock_key, b"1", 30)  # another process holds the lock
    tier.read.clear()
    with ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(chat, history)
        assert tier.read.wait(5)  # the key is made: the waiter reads the tier
        follow_up(history, "(typed meanwhile)")
        tier.delete(lock_key)  # the other process gave up
        assert waiter.result(10) == f"answer #2 to {text(opening())}"
    assert llm.prompts == [text(opening())] * 2  # learning the key, then the waiter's call


def tokens(text: str) -> Iterator[str]:
    yield from text.split()


def test_concurrent_calls_never_share_a_one_shot_result(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """A token generator cannot be handed to two callers: each caller that joins the
    call makes its own and reads every word; nothing is stored."""
    started = threading.Event()
    release = threading.Event()

    @cache_by_intent(cache=cache)
    def stream(prompt: str) -> Iterator[str]:
        answer = llm(prompt)
        if llm.calls == 1:
            started.set()
            release.wait(5)
        return tokens(answer)

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(lambda: list(stream("Write a poem")))
        assert started.wait(5)
        others = [pool.submit(lambda: list(stream("Write a poem"))) for _ in range(2)]
        time.sleep(0.1)  # they join the leader's call
        release.set()
        results = [first.result(5)] + [other.result(5) for other in others]
    assert sorted(results) == [f"answer #{n} to Write a poem".split() for n in (1, 2, 3)]
    assert llm.calls == 3


def test_concurrent_async_calls_never_share_a_one_shot_result(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """The same with tasks (deterministic: all three join before the call runs)."""

    @cache_by_intent(cache=cache)
    async def stream(prompt: str) -> Iterator[str]:
        return tokens(await llm.acall(prompt))

    async def scenario() -> list[list[str]]:
        results = await asyncio.gather(*(stream("Write a poem") for _ in range(3)))
        return [list(result) for result in results]

    results = asyncio.run(scenario())
    assert sorted(results) == [f"answer #{n} to Write a poem".split() for n in (1, 2, 3)]
    assert llm.calls == 3


def test_a_cancelled_async_leaders_answer_is_stored(cache: MultiLevelCache, llm: Counter) -> None:
    """The leader is cancelled while its call runs; the follower gets the answer, and
    so does the next identical call -- from the cache, without calling again. The
    leader's caller changed its ``history`` after the cancellation: what is stored is
    the answer for the content the key stands for."""

    @cache_by_intent(cache=cache)
    async def chat(messages: Chat) -> str:
        return await llm.acall(text(messages), delay=0.05)

    async def scenario() -> tuple[str, str]:
        history = opening()
        leader = asyncio.ensure_future(chat(history))
        await asyncio.sleep(0.01)  # the leader's call is running
        follower = asyncio.ensure_future(chat(opening()))
        await asyncio.sleep(0)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        follow_up(history, "(cancelled)")
        received = await follower
        for _ in range(100):  # the store follows the call's end
            await asyncio.sleep(0.001)
        return received, await chat(opening())

    received, later = asyncio.run(scenario())
    assert received == later == f"answer #1 to {text(opening())}"
    assert llm.calls == 1


SPINS = 2  # event-loop turns: the call is over, the leader not resumed


def test_a_leader_cancelled_as_its_call_ends_still_has_the_answer_stored(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """The leader is cancelled after the shared call finished but before it resumed to
    store the answer: the answer is stored all the same."""

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        return llm(prompt)

    async def scenario() -> str:
        leader = asyncio.ensure_future(chat("Explain cancellation"))
        for _ in range(SPINS):  # the shared call runs to its end; the leader not yet resumed
            await asyncio.sleep(0)
        leader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leader
        for _ in range(10):
            await asyncio.sleep(0)
        return str(await chat("Explain cancellation"))

    assert asyncio.run(scenario()) == "answer #1 to Explain cancellation" and llm.calls == 1
