"""Identical stream requests waiting on another process's lock: when that process
stores the answer, every waiting caller replays it from its own stream (a stream is a
one-shot object: handed to two callers, each would read half of it)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

openai = pytest.importorskip("openai")

from structlog.testing import capture_logs  # noqa: E402

from llm_middleware import MultiLevelCache, StampedeLock  # noqa: E402
from llm_middleware.backends.memcached import MemcachedBackend  # noqa: E402
from llm_middleware.openai import wrap_openai  # noqa: E402
from tests.support.fake_openai import FakeOpenAIServer  # noqa: E402
from tests.support.memcached_servers import MemcachedServer  # noqa: E402

REQUEST = {
    "model": "gpt-test",
    "messages": [{"role": "user", "content": "Explain Paxos"}],
    "stream": True,
}


def _text(stream: Any) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def test_callers_waiting_on_a_lock_each_replay_the_stored_stream(
    openai_server: FakeOpenAIServer, memcached_server: MemcachedServer
) -> None:
    shared = MemcachedBackend(servers=memcached_server.address, timeout=1.0)
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)
    cached = wrap_openai(
        client,
        cache=MultiLevelCache([shared]),
        lock=StampedeLock(ttl=30, wait=10, poll=0.01),
    )
    with capture_logs() as events:
        answer = _text(cached.chat.completions.create(**REQUEST))  # stored
    key = str(next(e["key"] for e in events if e["event"] == "cache.result"))
    entry = shared.get(key)
    assert entry is not None and answer
    shared.delete(key)
    assert shared.add(key + ":lock", b"1", 30)  # another process is computing it

    texts: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def caller() -> None:
        try:
            start.wait(5)
            texts.append(_text(cached.chat.completions.create(**REQUEST)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for thread in threads:
        thread.start()
    start.wait(5)
    time.sleep(0.2)  # both are waiting: one on the lock, the other on the first
    shared.set(key, entry, 300)  # the other process stores its answer
    shared.delete(key + ":lock")  # and lets go
    for thread in threads:
        thread.join(20)
    shared.close()
    assert not errors, errors
    assert texts == [answer, answer]
    assert openai_server.calls == 1  # the answer came from the other process's entry
