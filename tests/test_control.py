"""Per-call control: bypass(), refresh(), use_policy() stay inside their block."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from structlog.testing import capture_logs

from llm_middleware import (
    CachePolicy,
    MultiLevelCache,
    bypass,
    cache_by_intent,
    refresh,
    use_policy,
)

from .support.llm import Counter


def test_bypass_neither_reads_nor_writes(cache: MultiLevelCache, llm: Counter) -> None:
    """Inside ``bypass()`` the LLM is always called and nothing is stored."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    chat("Explain TLS")
    with capture_logs() as events, bypass():
        chat("Explain TLS")
        chat("Explain Kerberos")
    assert llm.calls == 3
    assert [e["reason"] for e in events if e["event"] == "cache.bypass"] == ["bypass"] * 2
    chat("Explain Kerberos")
    assert llm.calls == 4  # the bypassed call stored nothing
    chat("Explain TLS")
    assert llm.calls == 4  # outside the block the cache works again


def test_refresh_skips_the_lookup_and_stores(cache: MultiLevelCache, llm: Counter) -> None:
    """Inside ``refresh()`` the LLM is called and its fresh answer replaces the old."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    old = chat("Explain BGP")
    with capture_logs() as events, refresh():
        new = chat("Explain BGP")
    assert new != old
    assert [e["reason"] for e in events if e["event"] == "cache.bypass"] == ["refresh"]
    assert chat("Explain BGP") == new and llm.calls == 2


def test_use_policy_overrides_the_classifier(cache: MultiLevelCache, llm: Counter) -> None:
    """``use_policy`` replaces the classifier's verdict, and says so in the trace."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    with use_policy(CachePolicy.LONG), capture_logs() as events:
        chat("latest scores")
        chat("latest scores")
    assert llm.calls == 1
    policy = next(e for e in events if e["event"] == "cache.policy")
    assert (policy["policy"], policy["rule"]) == ("long", "use_policy")
    with use_policy(CachePolicy.NEVER):
        chat("Explain DNS")
        chat("Explain DNS")
    assert llm.calls == 3


def test_settings_do_not_leak_across_threads(cache: MultiLevelCache, llm: Counter) -> None:
    """A bypass in one thread does not affect calls made by other threads meanwhile."""
    inside = threading.Barrier(2)
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))

    chat("Explain A")
    chat("Explain B")

    def bypassing() -> None:
        with bypass():
            inside.wait()
            chat("Explain A")
            inside.wait()

    def normal() -> None:
        inside.wait()
        chat("Explain B")
        inside.wait()

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(bypassing), pool.submit(normal)]:
            future.result()
    assert llm.prompts == ["Explain A", "Explain B", "Explain A"]


def test_settings_do_not_leak_across_tasks(cache: MultiLevelCache, llm: Counter) -> None:
    """Under ``asyncio.gather`` a refresh applies to its own task only."""

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        await asyncio.sleep(0)
        return llm(prompt)

    async def refreshed() -> str:
        with refresh():
            return await chat("Explain QUIC")

    async def main() -> list[str]:
        await chat("Explain QUIC")
        await chat("Explain HTTP")
        return await asyncio.gather(refreshed(), chat("Explain HTTP"), chat("Explain HTTP"))

    results = asyncio.run(main())
    assert llm.calls == 3
    assert results[0] == "answer #3 to Explain QUIC"
    assert results[1] == results[2] == "answer #2 to Explain HTTP"


CONTROLS = {
    "bypass": bypass,
    "refresh": refresh,
    "use_policy": lambda: use_policy(CachePolicy.NEVER),
}


@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_no_leak_across_a_thread_pool(control: str, cache: MultiLevelCache, llm: Counter) -> None:
    """One thread inside the block reaches the LLM; threads running meanwhile outside it
    are still answered from the cache."""
    together = threading.Barrier(4, timeout=5)
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))

    chat("Explain the control")

    def worker(inside: bool) -> None:
        with CONTROLS[control]() if inside else contextlib.nullcontext():
            together.wait()
            chat("Explain the control")
            together.wait()

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(worker, i == 0) for i in range(4)]:
            future.result()
    assert llm.calls == 2


@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_no_leak_across_gather(control: str, cache: MultiLevelCache, llm: Counter) -> None:
    """Under ``asyncio.gather`` the block applies to its own task only."""

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        await asyncio.sleep(0)
        return llm(prompt)

    async def inside() -> str:
        with CONTROLS[control]():
            await asyncio.sleep(0)
            return await chat("Explain the control")

    async def main() -> None:
        await chat("Explain the control")
        await asyncio.gather(inside(), *(chat("Explain the control") for _ in range(5)))

    asyncio.run(main())
    assert llm.calls == 2
