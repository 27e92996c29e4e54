"""`MultiLevelCache.clear(namespace=)`: generations in the shared tier, no key scan."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from llm_middleware import MultiLevelCache, backend_from_url, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.testing import FakeClock
from tests.support.llm import Counter
from tests.support.memcached_servers import MemcachedServer
from tests.support.redis_servers import RedisServer

CHECK_S = 5.0


def memory(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(maxsize=100, ttl=3600, timer=clock)


class App:
    """One process's view: its own memory tier over a shared one, and its own LLM."""

    def __init__(self, cache: MultiLevelCache) -> None:
        self.cache = cache
        self.llm = Counter()
        self.asks = {ns: self._ask_in(ns) for ns in ("t1", "t2", None)}

    def _ask_in(self, namespace: str | None) -> Any:
        @cache_by_intent(cache=self.cache, namespace=namespace)
        def ask(prompt: str) -> str:
            return self.llm(prompt)

        return ask

    def misses(self, namespace: str | None) -> bool:
        """Whether asking in ``namespace`` reaches the LLM."""
        before = self.llm.calls
        self.asks[namespace]("Explain B-trees")
        return self.llm.calls > before


@pytest.fixture
def shared(clock: FakeClock) -> MemoryBackend:
    return memory(clock)


def app(shared: MemoryBackend, clock: FakeClock) -> App:
    return App(MultiLevelCache([memory(clock), shared], timer=clock, generation_check_s=CHECK_S))


def test_clearing_a_namespace_is_immediate_here_and_spares_the_others(
    shared: MemoryBackend, clock: FakeClock
) -> None:
    here = app(shared, clock)
    assert [here.misses(ns) for ns in ("t1", "t2", None)] == [True, True, True]
    here.cache.clear(namespace="t1")
    assert [here.misses(ns) for ns in ("t1", "t2", None)] == [True, False, False]
    assert not here.misses("t1")  # the new answer is cached as usual


def test_clearing_everything(shared: MemoryBackend, clock: FakeClock) -> None:
    here = app(shared, clock)
    for ns in ("t1", "t2", None):
        here.misses(ns)
    here.cache.clear()
    assert [here.misses(ns) for ns in ("t1", "t2", None)] == [True, True, True]
    assert [here.misses(ns) for ns in ("t1", "t2", None)] == [False, False, False]


def test_another_process_sees_the_clear_within_the_check_interval(
    shared: MemoryBackend, clock: FakeClock
) -> None:
    """Another cache over the same shared tier (a process of its own, with its own memory
    tier) reads the generation again at most every generation_check_s seconds."""
    here, there = app(shared, clock), app(shared, clock)
    here.misses("t1")
    assert not there.misses("t1")  # answered by the shared tier, now in its memory too
    here.cache.clear(namespace="t1")
    clock.advance(CHECK_S - 0.5)
    assert not there.misses("t1")  # not yet read again: its memory tier still answers
    clock.advance(0.5)
    assert there.misses("t1")
    assert not here.misses("t1")  # the answer `there` stored under the new generation


def test_direct_keys_and_async_clear(shared: MemoryBackend, clock: FakeClock) -> None:
    cache = MultiLevelCache([memory(clock), shared], timer=clock)
    cache.set("greeting", "hello")
    asyncio.run(cache.aclear())
    assert cache.get("greeting") is None
    cache.set("greeting", "hi")
    assert cache.get("greeting") == "hi"


def test_negative_check_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="generation_check_s"):
        MultiLevelCache([MemoryBackend()], generation_check_s=-1)


def clear_in_another_process(tiers: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "llm_middleware", "clear", "--tiers", tiers, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("kind", ["memcached", "redis"])
def test_cli_clear_in_one_process_is_seen_by_another(
    kind: str, request: pytest.FixtureRequest, clock: FakeClock
) -> None:
    """`llm-middleware clear --namespace` in its own process, over real memcached/Redis."""
    if kind == "memcached":
        server: MemcachedServer = request.getfixturevalue("memcached_server")
        url = f"memcached://{server.address}"
    else:
        redis: RedisServer = request.getfixturevalue("redis_server")
        url = redis.url
    tiers = [MemoryBackend(maxsize=100, ttl=300), backend_from_url(url)]
    cache = MultiLevelCache(tiers, timer=clock, generation_check_s=CHECK_S)
    here = App(cache)
    try:
        assert [here.misses(ns) for ns in ("t1", "t2")] == [True, True]
        out = clear_in_another_process(url, "--namespace", "t1")
        assert "cleared namespace 't1'" in out
        clock.advance(CHECK_S)
        assert [here.misses(ns) for ns in ("t1", "t2")] == [True, False]
        clear_in_another_process(url)
        clock.advance(CHECK_S)
        assert [here.misses(ns) for ns in ("t1", "t2")] == [True, True]
    finally:
        cache.close()
