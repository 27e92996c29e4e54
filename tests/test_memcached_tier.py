"""Memcached as the shared L3 tier: across processes, across servers, and through outages."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

pytest.importorskip("pymemcache")

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.backends.memcached import MemcachedBackend
from llm_middleware.backends.memory import MemoryBackend
from tests.support.llm import Counter
from tests.support.memcached_servers import MemcachedServer

WORKER = """
import json, os, structlog
from llm_middleware import cache_by_intent

calls = 0

@cache_by_intent
def chat(prompt: str) -> str:
    global calls
    calls += 1
    return f"answer made by process {os.getpid()}"

events = []

def keep(_, __, event):
    events.append(dict(event))
    raise structlog.DropEvent

structlog.configure(processors=[keep])
answers = [chat("Explain consistent hashing") for _ in range(2)]
print(json.dumps({
    "answers": answers,
    "calls": calls,
    "results": [[e["outcome"], e["tier"]] for e in events if e["event"] == "cache.result"],
    "promotions": [e["to_tiers"] for e in events if e["event"] == "cache.promote"],
}))
"""


def run_worker(tiers: str) -> dict[str, Any]:
    env = {**os.environ, "LLM_MIDDLEWARE_TIERS": tiers}
    done = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_second_process_gets_a_hit_and_promotes_it(memcached_server: MemcachedServer) -> None:
    """Two processes share memcached: the second is answered by the first one's call."""
    tiers = f"memory://?maxsize=100&ttl=300;memcached://{memcached_server.address}?timeout=0.5"
    first = run_worker(tiers)
    second = run_worker(tiers)
    assert first["calls"] == 1 and first["results"] == [["miss", None], ["hit", "L1"]]
    assert second["calls"] == 0
    assert second["answers"] == [first["answers"][0]] * 2
    assert second["results"] == [["hit", "L2"], ["hit", "L1"]]  # promoted into its memory
    assert second["promotions"] == [["L1"]]


def long_prompts(n: int) -> list[str]:
    return [f"Explain topic number {i}" for i in range(n)]


def test_keys_spread_and_a_stopped_server_loses_only_its_share(
    memcached_servers: list[MemcachedServer], llm: Counter
) -> None:
    """Keys shard over two servers; with one stopped, only its keys miss, and all calls answer."""
    a, b = memcached_servers
    backend = MemcachedBackend(servers=[a.address, b.address], timeout=0.5, dead_timeout=30)
    cache = MultiLevelCache([backend])
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))

    prompts = long_prompts(40)
    stored = [chat(prompt) for prompt in prompts]
    on_a, on_b = a.stats()["curr_items"], b.stats()["curr_items"]
    assert on_a > 0 and on_b > 0 and on_a + on_b == 40
    b.stop()
    with capture_logs() as events:
        answers = [chat(prompt) for prompt in prompts]
    assert all(answer.endswith(f" to {p}") for answer, p in zip(answers, prompts, strict=True))
    assert sum(answer == first for answer, first in zip(answers, stored, strict=True)) == on_a
    results = [e for e in events if e["event"] == "cache.result"]
    assert sum(e["outcome"] == "hit" for e in results) == on_a
    assert llm.calls == 40 + on_b
    backend.close()


def test_memcached_killed_during_200_calls(memcached_server: MemcachedServer, llm: Counter) -> None:
    """Killing memcached mid-run fails no call and costs no call more than the timeout;
    once it is back, hits return."""
    timeout, dead_timeout = 0.25, 0.5
    backend = MemcachedBackend(
        servers=memcached_server.address, timeout=timeout, dead_timeout=dead_timeout
    )
    cache = MultiLevelCache([backend])
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))

    prompts = long_prompts(10)
    slowest = 0.0
    outcomes: list[str] = []
    for i in range(200):
        if i == 70:
            memcached_server.stop()
        if i == 140:
            memcached_server.restart()
            time.sleep(dead_timeout)  # the server is left out of the ring this long
        prompt = prompts[i % len(prompts)]
        with capture_logs() as events:
            started = time.perf_counter()
            assert chat(prompt).endswith(f" to {prompt}")
            slowest = max(slowest, time.perf_counter() - started)
        outcomes.append(next(e["outcome"] for e in events if e["event"] == "cache.result"))
    assert slowest < timeout * 2  # bounded by the timeout, never a hang
    assert outcomes[:10] == ["miss"] * 10 and set(outcomes[10:70]) == {"hit"}
    assert set(outcomes[70:140]) == {"miss"}  # down: every call answered by the function
    assert outcomes[-10:] == ["hit"] * 10  # back: stored again and served
    assert llm.calls == outcomes.count("miss")  # every miss, and only a miss, was a call
    backend.close()


def test_hung_memcached_costs_one_timeout_then_is_skipped(
    memcached_server: MemcachedServer,
) -> None:
    """A server that stops answering costs about one timeout, then calls skip it."""
    timeout = 0.25
    backend = MemcachedBackend(servers=memcached_server.address, timeout=timeout, dead_timeout=30)
    cache = MultiLevelCache([backend])
    chat = cache_by_intent(cache=cache)(lambda prompt: f"answer to {prompt}")
    chat("Explain leases")
    memcached_server.pause()
    try:
        durations = []
        for prompt in long_prompts(5):
            started = time.perf_counter()
            assert chat(prompt) == f"answer to {prompt}"
            durations.append(time.perf_counter() - started)
    finally:
        memcached_server.resume()
    assert durations[0] < timeout * 2  # one timeout, on the lookup
    assert max(durations[1:]) < timeout / 2  # then the server is left out
    assert cache.stats()["errors"]["L1"] >= 1
    backend.close()


def test_too_large_for_memcached_is_kept_in_memory_only(
    memcached_server: MemcachedServer, llm: Counter
) -> None:
    """A 2 MiB answer is returned and cached in memory, skipped in memcached with an event."""
    backend = MemcachedBackend(servers=memcached_server.address)
    cache = MultiLevelCache([MemoryBackend(maxsize=10), MemoryBackend(maxsize=10), backend])
    big = base64.b64encode(os.urandom(3 * 1024 * 1024 // 2)).decode()  # 2 MiB, incompressible

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return f"{llm(prompt)}: {big}"

    answer = f"answer #1 to Explain the whole internet: {big}"
    with capture_logs() as events:
        assert chat("Explain the whole internet") == answer
    skipped = [e for e in events if e["event"] == "cache.bypass"]
    assert [(e["reason"], e["tier"]) for e in skipped] == [("too_large", "L3")]
    store = next(e for e in events if e["event"] == "cache.store")
    assert store["tiers"] == ["L1", "L2"]
    assert chat("Explain the whole internet") == answer and llm.calls == 1
    assert memcached_server.stats()["curr_items"] == 0
    backend.close()
