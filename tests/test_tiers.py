"""Tiers: lookup order, promotion at the remaining lifetime, store depth, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from llm_middleware import CachePolicy, ConfigurationError, MultiLevelCache, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.testing import FakeClock

from .support.llm import Counter


class BrokenBackend:
    """A backend whose every operation fails, like a server that is down."""

    def get(self, key: str) -> bytes | None:
        raise ConnectionError("backend down")

    def set(self, key: str, value: bytes, ttl: float) -> None:
        raise ConnectionError("backend down")

    def delete(self, key: str) -> None:
        raise ConnectionError("backend down")

    def close(self) -> None:
        pass


def three_tiers(clock: FakeClock) -> tuple[MultiLevelCache, list[MemoryBackend]]:
    backends = [
        MemoryBackend(maxsize=10, ttl=300, timer=clock),
        MemoryBackend(maxsize=100, ttl=3600, timer=clock),
        MemoryBackend(maxsize=1000, timer=clock),
    ]
    return MultiLevelCache(backends, timer=clock), backends


def test_expired_in_l1_is_served_from_l2_and_promoted(
    cache: MultiLevelCache, clock: FakeClock, llm: Counter
) -> None:
    """An entry leaves L1 at its cap, is then served from L2 and copied back into L1."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    answer = chat("Explain B-trees")  # LONG: stored in both tiers
    clock.advance(301)  # past L1's 300 s cap, within L2's 3,600 s
    with capture_logs() as events:
        assert chat("Explain B-trees") == answer
    assert llm.calls == 1
    result = next(e for e in events if e["event"] == "cache.result")
    assert (result["outcome"], result["tier"]) == ("hit", "L2")
    promote = next(e for e in events if e["event"] == "cache.promote")
    assert (promote["from_tier"], promote["to_tiers"]) == ("L2", ["L1"])
    assert cache.stats()["hits"] == {"L2": 1} and cache.stats()["promotions"] == 1
    with capture_logs() as events:
        chat("Explain B-trees")
    assert next(e for e in events if e["event"] == "cache.result")["tier"] == "L1"
    clock.advance(3600)  # beyond L2's cap: gone from both tiers
    chat("Explain B-trees")
    assert llm.calls == 2


def test_promotion_uses_the_remaining_lifetime(clock: FakeClock, llm: Counter) -> None:
    """A promoted copy lives only as long as the entry had left, never a fresh TTL."""
    cache, (l1, _, _) = three_tiers(clock)
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    key = key_of(lambda: chat("Write a parser"))  # MEDIUM: 300 s in L1 (its cap), 3,600 s in L2
    clock.advance(3500)  # L1 copy long gone; 100 s remain
    chat("Write a parser")
    assert llm.calls == 1
    assert l1.get(key) is not None
    clock.advance(101)  # the promoted copy must not outlive the original
    chat("Write a parser")
    assert llm.calls == 2


def key_of(call: Callable[[], object]) -> str:
    """The cache key a call used, as its trace events report it."""
    with capture_logs() as events:
        call()
    return str(events[-1]["key"])


def test_store_depth_follows_the_policy(clock: FakeClock, llm: Counter) -> None:
    """SHORT answers go to 1 tier, MEDIUM to 2, LONG to all (``tiers_for``)."""
    cache, backends = three_tiers(clock)
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    chat("Summarize this")  # SHORT
    assert [len(b) for b in backends] == [1, 0, 0]
    chat("Write a lexer")  # MEDIUM
    assert [len(b) for b in backends] == [2, 1, 0]
    chat("Explain lexers")  # LONG
    assert [len(b) for b in backends] == [3, 2, 1]
    deep = cache_by_intent(cache=cache, tiers_for={CachePolicy.SHORT: 3})(lambda prompt: prompt)
    deep("Summarize that")
    assert [len(b) for b in backends] == [4, 3, 2]


def test_a_raising_backend_never_breaks_the_call(clock: FakeClock, llm: Counter) -> None:
    """A tier that raises is a miss and a skipped store, with a ``cache.error`` each."""
    good = MemoryBackend(maxsize=10, timer=clock)
    cache = MultiLevelCache([BrokenBackend(), good], timer=clock)
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    with capture_logs() as events:
        first = chat("Explain RAID")
        second = chat("Explain RAID")
    assert first == second and llm.calls == 1  # served from the healthy tier
    errors = [e for e in events if e["event"] == "cache.error"]
    assert errors and all(e["tier"] == "L1" and "backend down" in e["error"] for e in errors)
    assert all(e["log_level"] == "warning" for e in errors)
    assert cache.stats()["errors"]["L1"] == len(errors)


def test_a_raising_backend_in_async_code(clock: FakeClock, llm: Counter) -> None:
    """The same holds for async callers (the sync backend runs in a thread)."""
    cache = MultiLevelCache([BrokenBackend()], timer=clock)

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        return llm(prompt)

    assert asyncio.run(chat("Explain RAID")).startswith("answer #1")
    assert asyncio.run(chat("Explain RAID")).startswith("answer #2")


def test_corrupt_entry_is_a_miss_and_is_deleted(
    cache: MultiLevelCache, clock: FakeClock, llm: Counter
) -> None:
    """Bytes that are not a valid envelope are a miss, deleted, and logged with a reason."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    key = key_of(lambda: chat("Explain ZFS"))
    for backend in cache.backends:
        backend.set(key, b"\x80garbage", 60)
    with capture_logs() as events:
        chat("Explain ZFS")
    assert llm.calls == 2
    reasons = [e["reason"] for e in events if e["event"] == "cache.error"]
    assert reasons == ["not_envelope", "not_envelope"]


def test_direct_get_set_and_delete(cache: MultiLevelCache, clock: FakeClock) -> None:
    """The cache is usable directly: values round-trip, expire, and are deleted."""
    cache.set("k", {"a": [1, 2.5, None]}, ttl=60)
    assert cache.get("k") == {"a": [1, 2.5, None]}
    clock.advance(61)
    assert cache.get("k", "gone") == "gone"
    asyncio.run(cache.aset("k2", "text", ttl=60))
    assert asyncio.run(cache.aget("k2")) == "text"
    cache.delete("k2")
    assert cache.get("k2") is None
    with pytest.raises(TypeError, match="cannot store"):
        cache.set("k3", object())


def test_bad_cache_construction() -> None:
    """A cache needs tiers that are backends, with distinct names."""
    with pytest.raises(ConfigurationError):
        MultiLevelCache([])
    with pytest.raises(ConfigurationError, match="not a Backend"):
        MultiLevelCache([object()])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="distinct name"):
        MultiLevelCache([MemoryBackend(), MemoryBackend()], names=["a", "a"])


def test_cache_info_counts_one_functions_calls(clock: FakeClock, llm: Counter) -> None:
    """``fn.cache_info()`` counts that function's hits per tier, misses, stores,
    promotions, bypasses and errors; the cache's ``stats()`` counts all functions."""
    good = MemoryBackend(maxsize=10, ttl=300, timer=clock)
    cache = MultiLevelCache([good, MemoryBackend(maxsize=10, timer=clock)], timer=clock)

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return llm(prompt)

    @cache_by_intent(cache=cache)
    def other(prompt: str) -> str:
        return llm(prompt)

    chat("Explain B-trees")
    chat("Explain B-trees")
    clock.advance(301)
    chat("Explain B-trees")
    chat("today's news")
    other("Explain B-trees")
    info = chat.cache_info()  # type: ignore[attr-defined]
    assert info["hits"] == {"L1": 1, "L2": 1} and info["misses"] == 1
    assert (info["stores"], info["promotions"]) == (1, 1)
    assert info["bypasses"] == {"policy_never": 1} and info["calls"] == 4
    assert info["hit_rate"] == 2 / 3
    assert cache.stats()["misses"] == 2 and cache.stats()["calls"] == 5
