"""A forked child's first cached call does not block, whatever another thread of the
parent was doing in a backend at the fork (the contract's ``test_fork`` holds every
backend to it; this is the SQLite scenario, step by step)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import pytest

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.backends.sqlite import SQLiteBackend

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")


def test_sqlite_tier_does_not_hang_a_child_forked_during_a_store(tmp_path: Path) -> None:
    """Another process holds the write lock; a thread's store waits out ``busy_timeout``
    holding the backend's lock; the process forks then. The child's first cached call
    is answered (a read does not wait for a writer in WAL mode) instead of blocking
    forever on the inherited lock."""
    path = tmp_path / "cache.db"
    tier = SQLiteBackend(path=path, busy_timeout=1.0)
    cache = MultiLevelCache([MemoryBackend(maxsize=10), tier])

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return f"answer in {os.getpid()}"

    writer = sqlite3.connect(path, isolation_level=None)  # another process, as SQLite sees it
    writer.execute("BEGIN IMMEDIATE")

    def store() -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # "database is locked", in time
            tier.set("k", b"v", 60)

    storing = threading.Thread(target=store)
    storing.start()
    deadline = time.monotonic() + 10
    while not tier._lock.locked():  # the store waits for the write lock, holding ours
        assert time.monotonic() < deadline
        time.sleep(0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        status = 3
        try:
            signal.alarm(10)  # a hang ends as SIGALRM
            status = 0 if chat("Explain forks") == f"answer in {os.getpid()}" else 2
            tier.get("k")  # a read of the tier itself, directly
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    writer.execute("ROLLBACK")
    storing.join(timeout=10)
    writer.close()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (
        f"the child was killed by signal {os.WTERMSIG(status)}"
        if os.WIFSIGNALED(status)
        else f"the child exited with {os.WEXITSTATUS(status)}"
    )
