"""In-process memory tier on cachetools, with a per-entry lifetime and a tier cap."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from cachetools import LRUCache

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """A bounded, thread-safe memory tier: at most ``maxsize`` entries (least
    recently used evicted first), each kept for ``min(ttl given at set, ttl cap)``.

    Each entry carries its own expiry time; an expired entry is dropped when it is
    next read (or evicted as the least recently used). ``timer`` is the clock in
    seconds; tests inject a fake one.
    """

    nonblocking = True
    """Never waits on I/O: async code may call ``get``/``set``/``delete`` inline."""

    def __init__(
        self,
        *,
        maxsize: int = 1000,
        ttl: float | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        if ttl is not None and not 0 < ttl < math.inf:
            raise ValueError(f"ttl must be positive and finite (seconds), got {ttl}")
        self.maxsize = maxsize
        self.ttl = ttl
        self._timer = timer
        self._lock = threading.Lock()
        # plain LRU of (value, expires): a read is one locked lookup, no expiry heap
        self._data: LRUCache[str, tuple[bytes, float]] = LRUCache(maxsize=maxsize)

    def __repr__(self) -> str:
        return f"MemoryBackend(maxsize={self.maxsize}, ttl={self.ttl})"

    def get(self, key: str) -> bytes | None:
        with self._lock:
            try:
                value, expires = self._data[key]
            except KeyError:
                return None
            if expires > self._timer():
                return value
            del self._data[key]
            return None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if self.ttl is not None:
            ttl = min(ttl, self.ttl)
        if ttl <= 0:
            return
        entry = (bytes(value), self._timer() + ttl)
        with self._lock:
            self._data[key] = entry

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def close(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        """The number of live (unexpired) entries."""
        now = self._timer()
        with self._lock:
            return sum(1 for _, expires in self._data.values() if expires > now)

    # Memory never blocks: the async twins run inline, no thread hop.
    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        self.set(key, value, ttl)

    async def adelete(self, key: str) -> None:
        self.delete(key)

    async def aclose(self) -> None:
        self.close()
