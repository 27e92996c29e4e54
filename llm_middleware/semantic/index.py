"""The vectors of stored prompts, by partition: nearest-neighbour search for the
semantic level, and the normal forms for the normalized level.

A partition holds one context (same function, namespace, model, every other
argument); it is searched by brute force in numpy while small and through a
faiss HNSW graph once it holds more than ``hnsw_above`` entries. Partitions are
kept LRU (``max_partitions``), each capped at ``max_entries`` (the oldest goes
first), and an entry expires with its answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from cachetools import LRUCache

__all__ = ["Entry", "Match", "Partition", "SemanticIndex"]


@dataclass(frozen=True)
class Entry:
    """One stored prompt: the exact key of its answer, its normal form, its vector
    (unit float32 row), when its answer expires (the cache's clock), and what
    verified matching observed of candidates matched to it (``(similarity,
    correct)`` pairs, the newest last)."""

    key: str
    normal: str
    vector: Any
    expires: float
    observations: tuple[tuple[float, bool], ...] = ()


class Match(NamedTuple):
    key: str
    similarity: float
    expires: float


class _Graph:
    """A faiss HNSW graph over the rows added so far (it cannot delete: removed rows
    are skipped until the graph is rebuilt)."""

    def __init__(self, dimension: int, rows: Any) -> None:
        import faiss

        self.index = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = 80
        self.index.hnsw.efSearch = 64
        if len(rows):
            self.index.add(rows)

    def add(self, rows: Any) -> None:
        self.index.add(rows)

    def search(self, vector: Any, k: int) -> tuple[Any, Any]:
        return self.index.search(vector.reshape(1, -1), k)


class Partition:
    """The entries of one context. Not thread-safe: `SemanticIndex` locks around it."""

    def __init__(self, dimension: int, max_entries: int, hnsw_above: int) -> None:
        import numpy as np

        self.dimension, self.max_entries, self.hnsw_above = dimension, max_entries, hnsw_above
        self.entries: OrderedDict[str, Entry] = OrderedDict()  # oldest first
        self.normals: dict[str, str] = {}  # normal form -> key
        self._buffer = np.zeros((0, dimension), dtype=np.float32)  # rows, then spare room
        self._keys: list[str | None] = []  # row -> key; None for a removed row
        self._row_of: dict[str, int] = {}
        self._graph: _Graph | None = None
        self.shared_digest = b""  # of the shared bytes last merged or written

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entry: Entry) -> None:
        """Add or replace ``entry``; the oldest entry leaves when the partition is full."""
        import numpy as np

        if entry.key in self.entries:
            self.remove(entry.key)
        while len(self.entries) >= self.max_entries:
            self.remove(next(iter(self.entries)))
        self.entries[entry.key] = entry
        self.normals[entry.normal] = entry.key
        row = np.asarray(entry.vector, dtype=np.float32).reshape(1, self.dimension)
        self._row_of[entry.key] = len(self._keys)
        self._keys.append(entry.key)
        used = len(self._keys) - 1
        if used >= len(self._buffer):  # grow by doubling: adding stays O(1) amortised
            grown = np.zeros((max(64, 2 * len(self._buffer)), self.dimension), np.float32)
            grown[:used] = self._buffer[:used]
            self._buffer = grown
        self._buffer[used] = row[0]
        if self._graph is not None:
            self._graph.add(row)
        elif len(self.entries) > self.hnsw_above:
            self._rebuild()

    def remove(self, key: str) -> None:
        entry = self.entries.pop(key, None)
        if entry is None:
            return
        if self.normals.get(entry.normal) == key:
            del self.normals[entry.normal]
        self._keys[self._row_of.pop(key)] = None
        if len(self._keys) > 2 * len(self.entries) + 64:
            self._rebuild()  # mostly removed rows: compact them away

    def _rebuild(self) -> None:
        import numpy as np

        live = [i for i, key in enumerate(self._keys) if key is not None]
        self._buffer = np.ascontiguousarray(self._buffer[live])
        self._keys = [self._keys[i] for i in live]
        self._row_of = {key: i for i, key in enumerate(self._keys) if key is not None}
        big = len(self._keys) > self.hnsw_above
        self._graph = _Graph(self.dimension, self._buffer) if big else None

    def normal(self, text: str, now: float) -> Match | None:
        """The entry whose normal form is ``text``, if it has not expired."""
        key = self.normals.get(text)
        entry = None if key is None else self.entries.get(key)
        if entry is None or entry.expires <= now:
            return None
        return Match(entry.key, 1.0, entry.expires)

    def nearest(self, vector: Any, now: float) -> Match | None:
        """The unexpired entry most similar to ``vector`` (cosine), if any."""
        import numpy as np

        if not self.entries:
            return None
        if self._graph is not None:
            k = min(len(self._keys), 16)
            sims, rows = self._graph.search(vector, k)
            candidates: Iterable[tuple[int, float]] = zip(
                rows[0].tolist(), sims[0].tolist(), strict=True
            )
        else:
            sims = self._buffer[: len(self._keys)] @ vector
            order = np.argpartition(-sims, 16)[:16] if len(sims) > 16 else np.arange(len(sims))
            order = order[np.argsort(-sims[order])]
            candidates = ((int(i), float(sims[i])) for i in order)
        for row, sim in candidates:
            key = self._keys[row] if row >= 0 else None
            entry = None if key is None else self.entries.get(key)
            if entry is not None and entry.expires > now:
                return Match(entry.key, min(float(sim), 1.0), entry.expires)
        return None

    def observe(self, key: str, observations: tuple[tuple[float, bool], ...]) -> None:
        """Replace the observations of entry ``key`` (if it is still here)."""
        entry = self.entries.get(key)
        if entry is not None:  # assigning an existing key keeps the entry's age
            self.entries[key] = replace(entry, observations=observations)

    def expire(self, now: float) -> None:
        for key in [k for k, e in self.entries.items() if e.expires <= now]:
            self.remove(key)


class SemanticIndex:
    """Partitions by context id, LRU; thread-safe."""

    def __init__(
        self,
        dimension: int,
        *,
        max_partitions: int = 1024,
        max_entries: int = 10_000,
        hnsw_above: int = 20_000,
    ) -> None:
        self.dimension = dimension
        self.max_entries, self.hnsw_above = max_entries, hnsw_above
        self._partitions: LRUCache[str, Partition] = LRUCache(maxsize=max_partitions)
        self._lock = threading.Lock()

    def partition(self, name: str) -> Partition:
        """The partition ``name`` (created empty), marked most recently used."""
        with self._lock:
            found = self._partitions.get(name)
            if found is None:
                found = Partition(self.dimension, self.max_entries, self.hnsw_above)
                self._partitions[name] = found
            return found

    def add(self, name: str, entry: Entry) -> None:
        part = self.partition(name)
        with self._lock:
            part.add(entry)

    def merge(self, name: str, entries: list[Entry], now: float) -> None:
        """Entries read from a shared tier join the partition (a later expiry wins)."""
        part = self.partition(name)
        with self._lock:
            for entry in entries:
                known = part.entries.get(entry.key)
                if entry.expires > now and (known is None or known.expires < entry.expires):
                    if known is not None and not entry.observations and known.observations:
                        entry = replace(entry, observations=known.observations)
                    part.add(entry)
                elif known is not None and len(entry.observations) > len(known.observations):
                    part.observe(entry.key, entry.observations)  # another process learnt more

    def seen(self, name: str, data: bytes) -> bool:
        """Whether ``data`` are the shared bytes last seen for the partition (they
        need no decoding then); remembers them as seen."""
        import hashlib

        digest = hashlib.blake2b(data, digest_size=16).digest()
        part = self.partition(name)
        with self._lock:
            known = part.shared_digest == digest
            part.shared_digest = digest
            return known

    def normal(self, name: str, text: str, now: float) -> Match | None:
        part = self.partition(name)
        with self._lock:
            return part.normal(text, now)

    def nearest(self, name: str, vector: Any, now: float) -> Match | None:
        part = self.partition(name)
        with self._lock:
            return part.nearest(vector, now)

    def observations(self, name: str, key: str) -> tuple[tuple[float, bool], ...]:
        """What verified matching observed of candidates matched to entry ``key``."""
        part = self.partition(name)
        with self._lock:
            entry = part.entries.get(key)
            return () if entry is None else entry.observations

    def observe(self, name: str, key: str, observations: tuple[tuple[float, bool], ...]) -> None:
        part = self.partition(name)
        with self._lock:
            part.observe(key, observations)

    def entries(self, name: str, now: float) -> list[Entry]:
        """The partition's unexpired entries, oldest first (expired ones dropped)."""
        part = self.partition(name)
        with self._lock:
            part.expire(now)
            return list(part.entries.values())

    def clear(self) -> None:
        with self._lock:
            self._partitions.clear()
