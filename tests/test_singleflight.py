"""Concurrent identical misses make one upstream call; different keys never wait."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.singleflight import Flights

from .support.llm import Counter


def test_threads_share_one_call(cache: MultiLevelCache, llm: Counter) -> None:
    """20 threads asking the same new prompt: the function runs once, all get its value."""
    started = threading.Event()
    release = threading.Event()

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        answer = llm(prompt)
        started.set()
        release.wait(5)
        return answer

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(chat, "Explain consensus") for _ in range(20)]
        started.wait(5)
        release.set()
        results = [f.result() for f in futures]
    assert llm.calls == 1 and set(results) == {"answer #1 to Explain consensus"}


def test_waiters_get_the_same_exception_and_nothing_is_stored(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """Concurrent waiters receive the leader's exception; the next call tries again."""
    gate = threading.Barrier(2, timeout=5)

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        answer = llm(prompt)
        if llm.calls == 1:
            gate.wait()  # hold the call until the second caller waits on it
            raise RuntimeError("rate limited")
        return answer

    async def main() -> None:
        loop = asyncio.get_running_loop()
        leader = loop.run_in_executor(None, chat, "Explain gossip")
        await asyncio.sleep(0.2)
        follower = loop.run_in_executor(None, chat, "Explain gossip")
        await asyncio.sleep(0.2)  # the follower is now waiting on the held call
        await loop.run_in_executor(None, gate.wait)
        for outcome in await asyncio.gather(leader, follower, return_exceptions=True):
            assert isinstance(outcome, RuntimeError)

    asyncio.run(main())
    assert chat("Explain gossip") == "answer #2 to Explain gossip" and llm.calls == 2


def test_tasks_share_one_call_and_survive_a_cancelled_waiter(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """asyncio tasks share one call; cancelling one waiter does not cancel it for the rest."""

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        return await llm.acall(prompt, delay=0.05)

    async def main() -> list[str]:
        tasks = [asyncio.create_task(chat("Explain CRDTs")) for _ in range(10)]
        await asyncio.sleep(0.01)
        tasks[0].cancel()  # the leader
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        return await asyncio.gather(*tasks[1:])

    assert asyncio.run(main()) == ["answer #1 to Explain CRDTs"] * 9
    assert llm.calls == 1


def test_different_keys_do_not_wait_on_each_other(cache: MultiLevelCache) -> None:
    """A slow call for one prompt does not hold up a call for another."""
    release = threading.Event()

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        if prompt == "Explain slow":
            release.wait(5)
        return prompt

    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(chat, "Explain slow")
        assert pool.submit(chat, "Explain fast").result(timeout=5) == "Explain fast"
        assert not slow.done()
        release.set()
        assert slow.result() == "Explain slow"


def test_callers_sharing_a_call_get_their_own_copies(cache: MultiLevelCache) -> None:
    """A mutable answer shared by concurrent callers is copied: one caller's change is not
    seen by another, as with separate calls."""
    started = threading.Event()
    release = threading.Event()

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> dict[str, list[str]]:
        started.set()
        release.wait(5)
        return {"items": ["a"]}

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(chat, "Explain lists")
        started.wait(5)
        second = pool.submit(chat, "Explain lists")
        time.sleep(0.2)  # the second caller is now waiting on the first one's call
        release.set()
        mine, theirs = first.result(), second.result()
    mine["items"].append("changed")
    assert theirs == {"items": ["a"]}


def test_a_cancelled_leader_still_serves_late_callers(cache: MultiLevelCache, llm: Counter) -> None:
    """When the first caller is cancelled, callers arriving while its call runs join it
    instead of calling again."""

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        return await llm.acall(prompt, delay=0.1)

    async def main() -> str:
        leader = asyncio.create_task(chat("Explain cancellation"))
        await asyncio.sleep(0.01)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await chat("Explain cancellation")

    assert asyncio.run(main()) == "answer #1 to Explain cancellation"
    assert llm.calls == 1


def test_a_caller_that_began_before_a_flight_closed_takes_its_value() -> None:
    """A thread whose look-up missed just before the leader stored, and that reaches the
    single-flight table only after the leader closed its flight, takes that flight's value
    instead of calling again; a caller that began after the close calls."""
    flights = Flights()
    began = time.perf_counter()
    value, flight = flights.run("k", lambda: "first")
    assert value == "first" and flight is not None
    flights.release("k", flight)
    assert flights.run("k", lambda: "second", began) == ("first", None)
    fresh, fresh_flight = flights.run("k", lambda: "third", time.perf_counter())
    assert fresh == "third" and fresh_flight is not None
