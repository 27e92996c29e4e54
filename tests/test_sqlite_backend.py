"""`SQLiteBackend`: the contract, expiry and the size cap, URL paths, restarts, two processes."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from llm_middleware import (
    ConfigurationError,
    MultiLevelCache,
    backend_from_url,
    cache_by_intent,
    registry,
)
from llm_middleware.backends.sqlite import SQLiteBackend, path_from_location
from llm_middleware.contract import Backend
from llm_middleware.testing import BackendContract, FakeClock
from tests.support.second_process import ask_in_a_new_process


class TestSQLiteContract(BackendContract):
    """The shared backend contract, on a fresh file, with a fake clock."""

    fake_clock = True

    @pytest.fixture
    def backend(self, clock: FakeClock, tmp_path: Path) -> Iterator[Backend]:
        """A backend on an empty file in the test's temporary directory."""
        backend = SQLiteBackend(path=tmp_path / "contract.db", timer=clock)
        yield backend
        backend.close()

    def stalled(self, backend: Backend) -> contextlib.AbstractContextManager[None]:
        """Another thread holds the backend's lock for 0.3 s (a store waiting out a
        locked file would): a read waits for it."""
        return _held_for(backend._lock, 0.3)  # type: ignore[attr-defined]


@contextlib.contextmanager
def _held_for(lock: threading.Lock, seconds: float) -> Iterator[None]:
    lock.acquire()
    release = threading.Timer(seconds, lock.release)
    release.start()
    try:
        yield
    finally:
        release.join()


def test_expired_rows_are_misses_until_purged(tmp_path: Path) -> None:
    """An expired entry reads as a miss at once; its row goes at the next purge."""
    clock = FakeClock(1_000.0)
    backend = SQLiteBackend(path=tmp_path / "c.db", timer=clock, purge_every=1_000)
    backend.set("short", b"s", 10)
    backend.set("long", b"l", 100)
    clock.advance(10)
    assert (backend.get("short"), backend.get("long")) == (None, b"l")
    assert len(backend) == 2
    assert backend.purge() == 1
    assert len(backend) == 1
    backend.close()


def test_periodic_purge_keeps_the_newest_entries(tmp_path: Path) -> None:
    """Every ``purge_every`` stores, the oldest stored entries beyond ``max_entries`` go;
    storing a key again makes it new."""
    backend = SQLiteBackend(path=tmp_path / "c.db", max_entries=10, purge_every=5)
    for i in range(20):
        backend.set(f"k{i}", b"v", 60)
        if i == 12:
            backend.set("k0", b"again", 60)  # k0 is now younger than k1..k12
    assert len(backend) == 10 + 1  # purged at the 20th store (k18); k19 came after
    kept = {f"k{i}" for i in range(20) if backend.get(f"k{i}") is not None}
    assert kept == {"k0"} | {f"k{i}" for i in range(10, 20)}
    assert backend.get("k0") == b"again"
    backend.close()


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/cache.db", Path("cache.db")),
        ("/sub/dir/cache.db", Path("sub/dir/cache.db")),
        ("//abs/cache.db", Path("/abs/cache.db")),
        ("/my%20cache.db", Path("my cache.db")),
        ("rel/cache.db", Path("rel/cache.db")),
        ("/~/cache.db", Path("~/cache.db").expanduser()),
    ],
)
def test_url_paths(location: str, expected: Path) -> None:
    """``sqlite:///rel.db`` is relative, ``sqlite:////abs.db`` absolute, like SQLAlchemy."""
    assert path_from_location(location) == expected


def test_backend_from_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registered: dict[str, Any]
) -> None:
    """A URL names the file; a relative path is resolved against the working directory once;
    query options are converted to the constructor's types; mistakes raise at once."""
    monkeypatch.chdir(tmp_path)
    backend = backend_from_url("sqlite:///sub/cache.db?max_entries=50&busy_timeout=0.5")
    assert isinstance(backend, SQLiteBackend)
    assert backend.path == tmp_path / "sub" / "cache.db" and backend.path.exists()
    assert (backend.max_entries, backend.busy_timeout) == (50, 0.5)
    monkeypatch.chdir("/")
    backend.set("k", b"v", 60)  # still the same file after a chdir
    assert SQLiteBackend(path=tmp_path / "sub" / "cache.db").get("k") == b"v"
    absolute = backend_from_url(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(absolute, SQLiteBackend) and absolute.path == tmp_path / "abs.db"
    for url, message in [
        ("sqlite://", "needs a file path"),
        ("sqlite:///c.db?max_entrys=5", "valid options: busy_timeout, max_entries"),
        ("sqlite:///c.db?max_entries=0", "max_entries"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            backend_from_url(url)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The ``sqlite`` entry point as pyproject.toml declares it, registered for this test."""
    entry_points = dict(registry.registered_backends())
    entry_points["sqlite"] = EntryPoint(
        "sqlite", "llm_middleware.backends.sqlite:SQLiteBackend", registry.GROUP
    )
    monkeypatch.setattr(registry, "_entry_points", entry_points)
    return entry_points


@pytest.mark.parametrize("options", [{"path": ""}, {"path": ":memory:"}, {"max_entries": 0}])
def test_bad_options(tmp_path: Path, options: dict[str, Any]) -> None:
    """Bad paths or option values are configuration errors."""
    with pytest.raises(ConfigurationError):
        SQLiteBackend(**{"path": tmp_path / "c.db", **options})


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """A file that is not an SQLite database is refused at construction."""
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigurationError, match="not a database"):
        SQLiteBackend(path=tmp_path / "junk.db")


def test_a_locked_file_costs_busy_timeout_then_is_a_miss(tmp_path: Path) -> None:
    """While another process holds the write lock, a store waits ``busy_timeout`` and raises;
    reads go on (WAL); through the cache the call still succeeds."""
    backend = SQLiteBackend(path=tmp_path / "c.db", busy_timeout=0.2)
    backend.set("k", b"v", 60)
    other = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        backend.set("k2", b"v", 60)
    assert 0.15 < time.monotonic() - started < 1.0
    assert backend.get("k") == b"v"
    cache = MultiLevelCache([backend])

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return prompt.upper()

    with capture_logs() as events:
        assert chat("Explain locks") == "EXPLAIN LOCKS"
    assert [e["tier"] for e in events if e["event"] == "cache.error"] == ["L1"]
    other.execute("ROLLBACK")
    other.close()
    backend.close()


def test_a_locked_purge_is_retried_at_the_next_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purge that meets a locked file does not fail the store that ran it; the next store
    purges."""
    backend = SQLiteBackend(path=tmp_path / "c.db", max_entries=1, purge_every=2)
    purge = backend._purge

    def locked(conn: sqlite3.Connection, now: float) -> int:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(backend, "_purge", locked)
    backend.set("a", b"v", 60)
    backend.set("b", b"v", 60)  # its purge fails; the store stands
    assert len(backend) == 2
    monkeypatch.setattr(backend, "_purge", purge)
    backend.set("c", b"v", 60)
    assert len(backend) == 1 and backend.get("c") == b"v"
    backend.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    """A backend built before a fork (a pre-loading server) works in the child too."""
    backend = SQLiteBackend(path=tmp_path / "c.db")
    backend.set("parent", b"p", 60)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        ok = backend.get("parent") == b"p"
        backend.set("child", b"c", 60)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.get("child") == b"c"
    backend.close()


def test_a_long_answer_survives_a_restart(tmp_path: Path) -> None:
    """A second process gets the first one's LONG answer from the SQLite tier, uncalled."""
    path = str(tmp_path / "persist.db")
    first = ask_in_a_new_process(SQLiteBackend, path=path)
    second = ask_in_a_new_process(SQLiteBackend, path=path)
    assert (first["calls"], first["hits"]) == (1, {})
    assert (second["calls"], second["hits"]) == (0, {"L2": 1})
    assert second["answer"] == first["answer"]


HAMMER = """
import json, sys, time
from llm_middleware.backends.sqlite import SQLiteBackend

path, me, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))  # both processes open the new file at once
errors = []
backend = SQLiteBackend(path=path, purge_every=7, max_entries=600)  # 542 live at most
for i in range(400):
    try:
        backend.set(f"own:{me}:{i}", b"%d" % i, 60)
        if backend.get(f"own:{me}:{i}") != b"%d" % i:
            errors.append(f"lost own:{me}:{i}")
        backend.set(f"shared:{i % 10}", b"from %d" % me, 60)
        if backend.get(f"shared:{i % 10}") not in (b"from 1", b"from 2"):
            errors.append(f"lost shared:{i % 10}")
        if i % 3 == 0:
            backend.delete(f"own:{me}:{i}")
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
backend.close()
print(json.dumps({"errors": errors}))
"""


def test_two_processes_share_one_file(tmp_path: Path) -> None:
    """Two processes create, write, read and purge one new file at once without an error;
    afterwards the file holds exactly what both wrote."""
    path = str(tmp_path / "shared.db")
    start = str(time.time() + 0.5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HAMMER, path, str(me), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me in (1, 2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.splitlines()[-1]))
    assert [r["errors"] for r in results] == [[], []]
    backend = SQLiteBackend(path=path)
    assert len(backend) == 2 * (400 - 134) + 10
    for me in (1, 2):
        assert [backend.get(f"own:{me}:{i}") for i in range(400)] == [
            None if i % 3 == 0 else b"%d" % i for i in range(400)
        ]
    backend.close()
