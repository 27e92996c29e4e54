"""Persistent, embedded tier on the standard library's sqlite3: one file, one machine.

The file survives restarts and is shared by every thread and process that opens it. It runs
in WAL mode (readers never wait for the writer), ``synchronous=NORMAL`` (a crash of the
application loses nothing; a power cut may lose the last writes, fine for a cache) and a
``busy_timeout``: a writer waits that long for another process's write, then raises
``sqlite3.OperationalError`` ("database is locked"), which the core treats as a miss or a
skipped store. Within a process one connection is shared under a lock; a forked child gets
a new lock and opens its own connection (``os.register_at_fork``), whatever another thread
of the parent was doing at the fork.

Expiry is checked on read. Every ``purge_every`` stores (per process) one short transaction
deletes the expired rows and, past ``max_entries``, the oldest stored ones: the cap is soft,
exceeded by at most ``purge_every`` stores per writing process between purges.

Entries expire by the wall clock (``time.time``; shared by processes and across restarts), so
a clock set back makes entries live longer. Network file systems are unsupported (WAL needs
shared memory between processes on one machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from llm_middleware.contract import ConfigurationError, checking_options

from ._fork import Quiesced, abandon, renew_after_fork

__all__ = ["SQLiteBackend"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_cache (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_cache_expires ON llm_cache (expires);
"""
# INSERT OR REPLACE deletes the old row and inserts a new one with the largest rowid so far,
# so rowid order is store order: the oldest entries have the smallest rowids.
_SET = "INSERT OR REPLACE INTO llm_cache (key, value, expires) VALUES (?, ?, ?)"
_GET = "SELECT value FROM llm_cache WHERE key = ? AND expires > ?"
_EVICT = """DELETE FROM llm_cache WHERE rowid <= (
    SELECT rowid FROM llm_cache ORDER BY rowid LIMIT 1 OFFSET ?)"""


def path_from_location(location: str) -> Path:
    """A URL location as a path, the SQLAlchemy way: ``sqlite:///cache.db`` gives the location
    ``/cache.db``, a path relative to the working directory; ``sqlite:////abs/cache.db`` gives
    ``//abs/cache.db``, the absolute ``/abs/cache.db``. Percent-escapes are decoded and a
    leading ``~`` is the home directory."""
    text = unquote(location)
    text = text[1:] if text.startswith("/") else text
    if not text:
        raise ConfigurationError("sqlite needs a file path: sqlite:///relative.db or ////abs.db")
    return Path(text).expanduser()


class SQLiteBackend:
    """An SQLite file tier (see the module docstring for concurrency and expiry).

    ``path``: the database file, created with its parent directories when missing (a relative
    path is resolved against the working directory once, here). ``max_entries``: the soft
    size cap. ``purge_every``: stores between purges. ``busy_timeout``: seconds to wait for
    another process's write lock. ``timer``: the wall clock in seconds (tests pass a fake one).
    """

    shared = True
    """Reachable from outside the process: encrypted when the cache has an ``encryption_key``."""

    def __init__(
        self,
        *,
        path: str | Path,
        max_entries: int = 100_000,
        purge_every: int = 256,
        busy_timeout: float = 1.0,
        timer: Callable[[], float] = time.time,
    ) -> None:
        with checking_options("SQLiteBackend"):
            if max_entries < 1 or purge_every < 1:
                raise ConfigurationError("max_entries and purge_every must be >= 1")
            if not busy_timeout >= 0:
                raise ConfigurationError(f"busy_timeout must be >= 0 seconds, got {busy_timeout!r}")
            if str(path) in ("", ":memory:"):
                raise ConfigurationError(
                    "sqlite needs a file path (a tier in memory: use memory://)"
                )
            self.path = Path(path).expanduser().absolute()
        self.max_entries = max_entries
        self.purge_every = purge_every
        self.busy_timeout = busy_timeout
        self._timer = timer
        self._lock = threading.Lock()
        self._stores = 0
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        renew_after_fork(self)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._connection()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(f"cannot open sqlite cache {str(self.path)!r}: {exc}") from exc

    @classmethod
    def from_url(cls, location: str, **options: Any) -> SQLiteBackend:
        """Build from a URL's location (see `path_from_location`); options are keywords."""
        if "path" in options:
            raise ConfigurationError("sqlite path given both in the URL and as path=")
        return cls(path=path_from_location(location), **options)

    def __repr__(self) -> str:
        return f"SQLiteBackend(path={str(self.path)!r}, max_entries={self.max_entries})"

    def get(self, key: str) -> bytes | None:
        """Return the stored bytes, or ``None`` when absent or expired."""
        with self._lock:
            row = self._connection().execute(_GET, (key, self._timer())).fetchone()
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds; every ``purge_every`` stores, purge (a purge
        that finds the file locked is left to the next store: this store did succeed)."""
        if not isinstance(value, bytes):
            raise TypeError(f"sqlite values are bytes, got {type(value).__name__}")
        if not (ttl > 0 and math.isfinite(ttl)):
            raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl!r}")
        with self._lock:
            now = self._timer()
            conn = self._connection()
            conn.execute(_SET, (key, value, now + ttl))
            self._stores += 1
            if self._stores >= self.purge_every:
                with contextlib.suppress(sqlite3.OperationalError):
                    self._purge(conn, now)
                    self._stores = 0

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""
        with self._lock:
            self._connection().execute("DELETE FROM llm_cache WHERE key = ?", (key,))

    def purge(self) -> int:
        """Delete expired entries, then the oldest past ``max_entries``; how many went."""
        with self._lock:
            return self._purge(self._connection(), self._timer())

    def close(self) -> None:
        """Close the connection; closing twice is harmless (a later call reopens)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __len__(self) -> int:
        """Rows in the file, expired ones not yet purged included."""
        with self._lock:
            return int(self._connection().execute("SELECT count(*) FROM llm_cache").fetchone()[0])

    async def aget(self, key: str) -> bytes | None:
        """`get` in a worker thread."""
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        """`set` in a worker thread."""
        await asyncio.to_thread(self.set, key, value, ttl)

    async def adelete(self, key: str) -> None:
        """`delete` in a worker thread."""
        await asyncio.to_thread(self.delete, key)

    async def aclose(self) -> None:
        """`close` in a worker thread."""
        await asyncio.to_thread(self.close)

    def _quiesce(self) -> Quiesced:
        """What a fork waits for: no thread inside SQLite through this backend (a store
        waits at most ``busy_timeout``), so the child finds SQLite in a sane state."""
        return Quiesced(self._lock, self.busy_timeout + 1.0)

    def _after_fork(self) -> None:
        """In a forked child: a new lock (another thread may have held the parent's,
        e.g. a store waiting out ``busy_timeout``), and a new connection on first use."""
        self._lock = threading.Lock()
        abandon(self._conn)
        self._conn, self._pid = None, os.getpid()

    def _connection(self) -> sqlite3.Connection:
        """The shared connection, opened (and the schema made) on first use, and again in a
        forked child (a connection must not cross a fork: the parent's is left alone)."""
        if self._conn is not None and self._pid != os.getpid():
            self._conn = None
        if self._conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the schema. Switching a new file to WAL fails at once with "database
        is locked" while another process does it (no busy handler): retried to busy_timeout."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _purge(self, conn: sqlite3.Connection, now: float) -> int:
        with conn:  # one transaction: the count and the eviction agree
            conn.execute("BEGIN IMMEDIATE")
            removed = conn.execute("DELETE FROM llm_cache WHERE expires <= ?", (now,)).rowcount
            count = conn.execute("SELECT count(*) FROM llm_cache").fetchone()[0]
            if count > self.max_entries:
                removed += conn.execute(_EVICT, (count - self.max_entries - 1,)).rowcount
        return int(removed)
