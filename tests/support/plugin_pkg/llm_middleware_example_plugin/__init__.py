"""An example llm_middleware backend plugin: a dict with per-entry lifetimes.

It does not import llm_middleware: the core finds it through the entry point
``example-dict`` in the ``llm_middleware.backends`` group (see ``pyproject.toml``).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable

__all__ = ["DictBackend"]

_instances: weakref.WeakSet[DictBackend] = weakref.WeakSet()


def _renew_locks() -> None:
    """In a forked child: a lock another thread held at the fork would stay held."""
    for backend in list(_instances):
        backend._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_locks)


class DictBackend:
    """A thread-safe dict of ``key -> (value, expires_at)``, at most ``maxsize`` entries
    (the oldest stored goes first). ``timer`` is the clock in seconds; tests inject one."""

    def __init__(self, *, maxsize: int = 1000, timer: Callable[[], float] = time.monotonic) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._timer = timer
        self._lock = threading.Lock()
        self._data: dict[str, tuple[bytes, float]] = {}
        _instances.add(self)

    def __repr__(self) -> str:
        return f"DictBackend(maxsize={self.maxsize})"

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry[1] <= self._timer():
                del self._data[key]
                return None
            return entry[0]

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            now = self._timer()
            self._data.pop(key, None)  # re-inserted last: the newest entry
            if len(self._data) >= self.maxsize:
                self._data = {k: e for k, e in self._data.items() if e[1] > now}
            while len(self._data) >= self.maxsize:
                del self._data[next(iter(self._data))]
            self._data[key] = (bytes(value), now + ttl)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def close(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    # A dict never blocks: the async twins run inline, with no thread hop.
    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        self.set(key, value, ttl)

    async def adelete(self, key: str) -> None:
        self.delete(key)

    async def aclose(self) -> None:
        self.close()
