"""Stale-while-revalidate: past its lifetime, within a grace window, an answer is served
at once while one background call replaces it."""

from __future__ import annotations

import asyncio
import threading

import pytest
from structlog.testing import capture_logs

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.testing import FakeClock

from .support.llm import Counter


@pytest.fixture
def cache(clock: FakeClock) -> MultiLevelCache:
    """One uncapped memory tier: a tier's own cap would end the grace window early."""
    return MultiLevelCache([MemoryBackend(maxsize=100, timer=clock)], timer=clock)


def wait_for(event: threading.Event) -> None:
    assert event.wait(5), "the background refresh did not run"


def test_stale_answer_is_served_and_refreshed_once(
    cache: MultiLevelCache, clock: FakeClock, llm: Counter
) -> None:
    """Within the grace window: the stale answer at once, one refresh, then the fresh one."""
    refreshed = threading.Event()
    release = threading.Event()
    first, fresh = (f"answer #{n} to Summarize the meeting digest" for n in (1, 2))

    @cache_by_intent(cache=cache, stale_ttl=600)
    def chat(prompt: str) -> str:
        answer = llm(prompt)
        if llm.calls > 1:
            release.wait(5)
            refreshed.set()
        return answer

    assert chat("Summarize the meeting digest") == first  # SHORT: 300 s
    clock.advance(301)
    with capture_logs() as events:
        assert chat("Summarize the meeting digest") == first  # stale, at once
        assert chat("Summarize the meeting digest") == first  # refresh still running
    results = [e for e in events if e["event"] == "cache.result"]
    assert [r.get("stale") for r in results] == [True, True]
    release.set()
    wait_for(refreshed)
    for _ in range(100):  # the refresh stores right after the call returns
        if chat("Summarize the meeting digest") == fresh:
            break
        threading.Event().wait(0.01)
    assert chat("Summarize the meeting digest") == fresh and llm.calls == 2


def test_past_the_grace_window_is_a_miss(
    cache: MultiLevelCache, clock: FakeClock, llm: Counter
) -> None:
    """An answer older than its lifetime plus the grace window is not served."""
    chat = cache_by_intent(cache=cache, stale_ttl=60)(lambda prompt: llm(prompt))
    chat("Summarize the digest")
    clock.advance(300 + 61)
    assert chat("Summarize the digest") == "answer #2 to Summarize the digest"


def test_failed_refresh_keeps_the_stale_answer(
    cache: MultiLevelCache, clock: FakeClock, llm: Counter
) -> None:
    """A refresh that raises leaves the stale answer in place and logs ``cache.error``."""
    failed = threading.Event()
    stale = "answer #1 to Summarize the digest"

    @cache_by_intent(cache=cache, stale_ttl=600)
    def chat(prompt: str) -> str:
        answer = llm(prompt)
        if llm.calls == 2:
            failed.set()
            raise ConnectionError("upstream down")
        return answer

    chat("Summarize the digest")
    clock.advance(301)
    with capture_logs() as events:
        assert chat("Summarize the digest") == stale
        wait_for(failed)
        for _ in range(100):
            if any(e["event"] == "cache.error" for e in events):
                break
            threading.Event().wait(0.01)
    error = next(e for e in events if e["event"] == "cache.error")
    assert error["reason"] == "revalidate" and "upstream down" in error["error"]
    assert chat("Summarize the digest") == stale  # still stale, refreshed again later


def test_async_stale_answer_is_refreshed_by_a_task(
    cache: MultiLevelCache, clock: FakeClock, llm: Counter
) -> None:
    """Async functions refresh in a background task."""

    @cache_by_intent(cache=cache, stale_ttl=600)
    async def chat(prompt: str) -> str:
        return llm(prompt)

    async def main() -> list[str]:
        first = await chat("Summarize the digest")
        clock.advance(301)
        stale = await chat("Summarize the digest")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if llm.calls == 2:
                break
        await asyncio.sleep(0.01)
        return [first, stale, await chat("Summarize the digest")]

    first, fresh = (f"answer #{n} to Summarize the digest" for n in (1, 2))
    assert asyncio.run(main()) == [first, first, fresh]
