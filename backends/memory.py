"""In-process memory tier on cachetools, with a per-entry lifetime and a tier cap."""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable

from cachetools import Cache, LRUCache

from llm_middleware.contract import ConfigurationError, checking_options

from ._fork import Quiesced, renew_after_fork

__all__ = ["MemoryBackend"]

_Entry = tuple[bytes, float]  # (value, expiry time)


class _ExpiringLRU(LRUCache[str, _Entry]):
    """cachetools' ``LRUCache`` of entries that carry their expiry time. When full, it
    evicts expired entries first (as ``TLRUCache`` does), then the least recently used:
    a dead entry never keeps a live one out. Reads stay a plain LRU lookup."""

    def __init__(self, maxsize: int, timer: Callable[[], float]) -> None:
        super().__init__(maxsize)
        self._timer = timer
        self._expiries: list[tuple[float, str]] = []  # a heap; stale pairs are skipped

    def __setitem__(self, key: str, entry: _Entry) -> None:
        super().__setitem__(key, entry)
        heapq.heappush(self._expiries, (entry[1], key))
        if len(self._expiries) > 2 * self.maxsize + 64:  # drop pairs of replaced entries
            self._expiries = [(e, k) for e, k in self._expiries if self._expiry(k) == e]
            heapq.heapify(self._expiries)

    def _expiry(self, key: str) -> float | None:
        """``key``'s current expiry, read without touching the LRU order."""
        try:
            return Cache.__getitem__(self, key)[1]
        except KeyError:
            return None

    def popitem(self) -> tuple[str, _Entry]:
        heap, now = self._expiries, self._timer()
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            if self._expiry(key) == expires:
                return key, self.pop(key)
        return super().popitem()


class MemoryBackend:
    """A bounded, thread-safe memory tier: at most ``maxsize`` entries (least
    recently used evicted first), each kept for ``min(ttl given at set, ttl cap)``.

    Each entry carries its own expiry time; an expired entry is dropped when it is
    next read, or first when the tier is full. ``timer`` is the clock in seconds;
    tests inject a fake one. ``shared=True`` has a cache with an ``encryption_key``
    encrypt this tier's entries too (an in-process tier is plain by default).
    """

    nonblocking = True
    """Never waits on I/O: async code may call ``get``/``set``/``delete`` inline."""

    def __init__(
        self,
        *,
        maxsize: int = 1000,
        ttl: float | None = None,
        timer: Callable[[], float] = time.monotonic,
        shared: bool = False,
    ) -> None:
        with checking_options("MemoryBackend"):
            if maxsize < 1:
                raise ConfigurationError(f"maxsize must be at least 1, got {maxsize}")
            if ttl is not None and not 0 < ttl < math.inf:
                raise ConfigurationError(f"ttl must be positive and finite (seconds), got {ttl}")
        self.maxsize = maxsize
        self.ttl = ttl
        self._timer = timer
        self.shared = shared
        """Whether entries here are encrypted when the cache has an ``encryption_key``."""
        self._lock = threading.Lock()
        self._fork_hold: Quiesced | None = None
        renew_after_fork(self)
        # a read is one locked LRU lookup; the expiry heap is only consulted when full
        self._data = _ExpiringLRU(maxsize, timer)

    def _quiesce(self) -> Quiesced:
        """What a fork waits for: no thread in the middle of changing the entries."""
        self._fork_hold = Quiesced(self._lock, 1.0)
        return self._fork_hold

    def _after_fork(self) -> None:
        """In a forked child: a new lock. The entries are the parent's copy, kept --
        unless the fork could not wait for a change under way: then the tier starts
        empty (it is a cache)."""
        hold = self._fork_hold
        if hold is None or not hold.held:
            self._data = _ExpiringLRU(self.maxsize, self._timer)
        self._fork_hold = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryBackend(maxsize={self.maxsize}, ttl={self.ttl})"

    def get(self, key: str) -> bytes | None:
        lock = self._lock
        lock.acquire()  # not ``with``: this is a hit's one lock, and half the cost of ``with``
        try:
            try:
                value, expires = self._data[key]
            except KeyError:
                return None
            if expires > self._timer():
                return value
            del self._data[key]
            return None
        finally:
            lock.release()

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
            self._data = _ExpiringLRU(self.maxsize, self._timer)

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
