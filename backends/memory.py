"""In-process memory tier on cachetools, with a per-entry lifetime and a tier cap."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from cachetools import TLRUCache

__all__ = ["MemoryBackend"]


def _expiry(key: str, entry: tuple[bytes, float], now: float) -> float:
    return now + entry[1]


class MemoryBackend:
    """A bounded, thread-safe memory tier: at most ``maxsize`` entries (least
    recently used evicted first), each kept for ``min(ttl given at set, ttl cap)``.

    ``timer`` is the clock in seconds; tests inject a fake one.
    """

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
        self._lock = threading.Lock()
        self._data: TLRUCache[str, tuple[bytes, float]] = TLRUCache(
            maxsize=maxsize, ttu=_expiry, timer=timer
        )

    def __repr__(self) -> str:
        return f"MemoryBackend(maxsize={self.maxsize}, ttl={self.ttl})"

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._data.get(key)
        return None if entry is None else entry[0]

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if self.ttl is not None:
            ttl = min(ttl, self.ttl)
        if ttl <= 0:
            return
        with self._lock:
            self._data[key] = (bytes(value), ttl)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def close(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    # Memory never blocks: the async twins run inline, no thread hop.
    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        self.set(key, value, ttl)

    async def adelete(self, key: str) -> None:
        self.delete(key)

    async def aclose(self) -> None:
        self.close()
