"""Cross-process lock waiters stop waiting as soon as the holder lets the lock go without
an answer (its call raised, or its answer could not be stored): one of them takes the
lock over and calls. Two real processes over a real memcached, ``wait=30``; the test
asserts the order of events in their shared log, not a time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.memcached_servers import MemcachedServer

pytestmark = pytest.mark.memcached

PROCESS = """
import json, os, sys, time
import structlog
from llm_middleware import MultiLevelCache, StampedeLock, cache_by_intent, load_backend

address, role, outcome, log, folder = sys.argv[1:6]
handle = open(log, "a", buffering=1)  # one line per write, appended: the shared order
structlog.configure(
    processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
    logger_factory=structlog.WriteLoggerFactory(handle),
)
cache = MultiLevelCache([load_backend("memcached", servers=address, timeout=1.0)])

@cache_by_intent(cache=cache, lock=StampedeLock(ttl=60, wait=30, poll=0.02))
def chat(prompt: str):
    if role == "holder":
        open(os.path.join(folder, "calling"), "w").close()
        while not os.path.exists(os.path.join(folder, "go")):
            time.sleep(0.01)
        if outcome == "raises":
            raise RuntimeError("429 Too Many Requests")
        return None  # an answer that cannot be stored
    return f"answer to {prompt}"

try:
    answer = chat("Explain distributed locks")
except RuntimeError as exc:
    answer = f"raised {exc}"
print(json.dumps({"role": role, "pid": os.getpid(), "answer": answer}))
"""


def start(server: MemcachedServer, role: str, outcome: str, log: Path, folder: Path) -> Any:
    args = [server.address, role, outcome, str(log), str(folder)]
    return subprocess.Popen(
        [sys.executable, "-c", PROCESS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Any, process: Any) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("outcome", ["raises", "returns_none"])
def test_lock_waiters_stop_when_the_holder_lets_go_without_an_answer(
    memcached_server: MemcachedServer, tmp_path: Path, outcome: str
) -> None:
    """The holder's call fails (a 429) or gives ``None``: it releases the lock, and the
    waiter's own ``cache.call`` follows that release, without waiting out ``wait=30``."""
    log = tmp_path / "events.jsonl"
    holder = start(memcached_server, "holder", outcome, log, tmp_path)
    wait_for((tmp_path / "calling").exists, holder)  # it holds the lock, inside its call
    waiter = start(memcached_server, "waiter", outcome, log, tmp_path)

    def waiting() -> bool:
        return any(
            e["event"] == "cache.lock" and e.get("acquired") is False
            for e in events(log)
            if log.exists()
        )

    wait_for(waiting, waiter)
    (tmp_path / "go").touch()
    held_out, held_err = holder.communicate(timeout=60)
    waited_out, waited_err = waiter.communicate(timeout=60)
    assert holder.returncode == 0, held_err
    assert waiter.returncode == 0, waited_err
    expected = "raised 429 Too Many Requests" if outcome == "raises" else None
    assert json.loads(held_out)["answer"] == expected
    assert json.loads(waited_out)["answer"] == "answer to Explain distributed locks"

    seen = [(e["event"], {k: v for k, v in e.items() if k in ("released", "acquired",
             "taken_over", "waited")}) for e in events(log)]  # fmt: skip
    release = seen.index(("cache.lock", {"released": True}))
    takeover = seen.index(("cache.lock", {"acquired": True, "taken_over": True}))
    calls = [i for i, (name, _) in enumerate(seen) if name == "cache.call"]
    assert release < takeover < calls[-1]  # the waiter's own call follows the release
    assert not any("waited" in fields for _, fields in seen)  # it did not wait out 30 s
