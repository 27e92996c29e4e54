"""Under load: a burst of identical requests is one LLM call, in one process and across many."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from llm_middleware import MultiLevelCache, StampedeLock, cache_by_intent
from tests.support.llm import Counter
from tests.support.memcached_servers import MemcachedServer


def test_50_threads_make_one_call(cache: MultiLevelCache, llm: Counter) -> None:
    """50 threads asking the same new prompt of a 200 ms function: it runs once."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt, delay=0.2))
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(chat, ["Explain the stampede"] * 50))
    assert llm.calls == 1
    assert answers == ["answer #1 to Explain the stampede"] * 50


def test_50_tasks_make_one_call(cache: MultiLevelCache, llm: Counter) -> None:
    """50 asyncio tasks asking the same new prompt of a 200 ms coroutine: it runs once."""

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        return await llm.acall(prompt, delay=0.2)

    async def main() -> list[str]:
        return await asyncio.gather(*(chat("Explain the stampede") for _ in range(50)))

    assert asyncio.run(main()) == ["answer #1 to Explain the stampede"] * 50
    assert llm.calls == 1


WORKER = """
import json, os, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from llm_middleware import MultiLevelCache, StampedeLock, cache_by_intent, load_backend

address, seconds, signal_file = sys.argv[1], float(sys.argv[2]), sys.argv[3]
cache = MultiLevelCache([
    load_backend("memory", maxsize=100),
    load_backend("memcached", servers=address, timeout=1.0),
])
calls = 0
count = threading.Lock()

@cache_by_intent(cache=cache, lock=StampedeLock(ttl=30, wait=float(sys.argv[4]), poll=0.02))
def chat(prompt: str) -> str:
    global calls
    with count:
        calls += 1
    open(signal_file, "a").close()   # tells the test a call is under way
    time.sleep(seconds)
    return f"answer to {prompt}"

started = time.monotonic()
with ThreadPoolExecutor(10) as pool:
    answers = list(pool.map(chat, ["Explain distributed locks"] * 10))
print(json.dumps({"calls": calls, "answers": sorted(set(answers)),
                  "elapsed": time.monotonic() - started}))
"""


def start_worker(server: MemcachedServer, seconds: float, signal: Path, wait: float) -> Any:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, server.address, str(seconds), str(signal), str(wait)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(worker: Any) -> dict[str, Any]:
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_four_processes_make_one_call(memcached_server: MemcachedServer, tmp_path: Path) -> None:
    """4 processes x 10 threads over one memcached, lock on: the function runs once."""
    signal = tmp_path / "calling"
    workers = [start_worker(memcached_server, 0.5, signal, wait=20) for _ in range(4)]
    results = [finish(w) for w in workers]
    assert sum(r["calls"] for r in results) == 1
    assert all(r["answers"] == ["answer to Explain distributed locks"] for r in results)


def test_dead_lock_holder_does_not_block_the_others(
    memcached_server: MemcachedServer, tmp_path: Path
) -> None:
    """When the process holding the lock dies mid-call, the others still answer within
    their bounded wait (then call the function themselves)."""
    signal = tmp_path / "calling"
    holder = start_worker(memcached_server, 30, signal, wait=1.0)
    deadline = time.monotonic() + 20
    while not signal.exists():  # the holder has the lock and is inside the call
        assert time.monotonic() < deadline and holder.poll() is None
        time.sleep(0.01)
    others = [start_worker(memcached_server, 0.2, tmp_path / "others", wait=1.0) for _ in range(3)]
    time.sleep(0.3)
    holder.kill()
    holder.communicate()
    results = [finish(w) for w in others]
    assert all(r["answers"] == ["answer to Explain distributed locks"] for r in results)
    assert all(r["elapsed"] < 1.0 + 0.2 + 5 for r in results)  # the wait bound, not the lock ttl


@pytest.mark.parametrize("mode", ["threads", "tasks"])
def test_lock_without_a_shared_tier_is_plain_single_flight(
    cache: MultiLevelCache, llm: Counter, mode: str
) -> None:
    """With only memory tiers there is nothing to lock across processes; calls still work."""

    @cache_by_intent(cache=cache, lock=True)
    def chat(prompt: str) -> str:
        return llm(prompt)

    @cache_by_intent(cache=cache, lock=True)
    async def achat(prompt: str) -> str:
        return llm(prompt)

    answer = "answer #1 to Explain locks"
    if mode == "threads":
        assert chat("Explain locks") == chat("Explain locks") == answer
    else:
        assert asyncio.run(achat("Explain locks")) == asyncio.run(achat("Explain locks")) == answer
    assert llm.calls == 1
    with pytest.raises(ValueError, match="StampedeLock"):
        StampedeLock(ttl=0)


def test_refresh_does_not_accept_the_old_answer_while_waiting_on_a_lock(
    memcached_server: MemcachedServer, llm: Counter
) -> None:
    """Under ``refresh()``, waiting on another process's lock never ends in the stale
    answer that refresh is meant to replace."""
    from llm_middleware import refresh
    from llm_middleware.backends.memcached import MemcachedBackend

    shared = MemcachedBackend(servers=memcached_server.address, timeout=1.0)
    cache = MultiLevelCache([shared])

    @cache_by_intent(cache=cache, lock=StampedeLock(ttl=30, wait=0.3, poll=0.02))
    def chat(prompt: str) -> str:
        return llm(prompt)

    assert chat("Explain leases") == "answer #1 to Explain leases"
    with capture_logs() as events:
        chat("Explain leases")
    key = str(events[-1]["key"])
    assert shared.add(key + ":lock", b"1", 30)  # another process is computing it
    with refresh():
        assert chat("Explain leases") == "answer #2 to Explain leases"
    shared.close()
