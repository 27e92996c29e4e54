"""Thread-safe counters behind `MultiLevelCache.stats()` and ``cache_info()``."""

from __future__ import annotations

import threading
import weakref
from collections import Counter, deque
from typing import NamedTuple, TypedDict

__all__ = ["CacheStats", "Calls", "Recorders", "StatsSnapshot", "function_stats"]


class StatsSnapshot(TypedDict):
    """What `CacheStats.snapshot` returns; every count since creation or ``clear()``."""

    calls: int
    hits: dict[str, int]
    misses: int
    bypasses: dict[str, int]
    errors: dict[str, int]
    stores: int
    promotions: int
    hit_rate: float
    saved_ms: float
    saved_tokens: int
    shadow: dict[str, int]
    """Shadow-mode semantic matching: ``matches`` found (not served) and how many of
    them were ``correct`` (the fresh answer agreed)."""
    verify: dict[str, int]
    """Verified semantic matching: ``calls`` to the function made to judge a
    candidate match (counted among the misses too) and how many found it
    ``correct``."""


class Calls(NamedTuple):
    """The calls of one ``(outcome, tier, policy)`` and what their hits saved."""

    calls: int
    saved_ms: float
    saved_tokens: int


_FOLD_AT = 512
"""Queued hits beyond this many are folded into the counters by the next hit."""


class CacheStats:
    """Counters for hits per tier, misses, bypasses by reason, errors by tier,
    stores, promotions, and the time and tokens hits saved.

    A hit -- the hot path -- takes no lock: it is queued (``deque.append`` is atomic)
    and folded into the counters in batches, and before every snapshot.

    Calls are also counted by ``(outcome, tier, policy)`` (`calls`), the labels of the
    metrics exporters. ``function``: the decorated function these counters are of;
    such counters are listed by `function_stats` while they live."""

    __slots__ = (
        "__weakref__",
        "_by_label",
        "_bypassed_calls",
        "_bypasses",
        "_errors",
        "_hits",
        "_lock",
        "_misses",
        "_promotions",
        "_shadow",
        "_stores",
        "_verify",
        "function",
        "queued",
    )

    def __init__(self, function: str | None = None) -> None:
        self._lock = threading.Lock()
        self.queued: deque[tuple[str, float, int, str | None]] = deque()
        self.function = function
        self.clear()
        if function is not None:
            _FUNCTIONS.add(self)

    def clear(self) -> None:
        """Reset every counter to zero."""
        with self._lock:
            self.queued.clear()
            self._hits: dict[tuple[str, str | None], list[float]] = {}
            self._bypasses: Counter[str] = Counter()
            self._errors: Counter[str] = Counter()
            self._shadow: Counter[str] = Counter()
            self._verify: Counter[str] = Counter()
            self._misses = self._bypassed_calls = self._stores = self._promotions = 0
            self._by_label: dict[tuple[str, str | None, str | None], list[float]] = {}

    def hit(self, tier: str, saved_ms: float, saved_tokens: int, policy: str | None = None) -> None:
        self.queue((tier, saved_ms, saved_tokens, policy))

    def queue(self, hit: tuple[str, float, int, str | None]) -> None:
        """Count ``(tier, saved_ms, saved_tokens, policy)`` as a hit, without taking the
        lock."""
        queued = self.queued
        queued.append(hit)
        if len(queued) > _FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Move the queued hits into the counters."""
        with self._lock:
            self._fold()

    def _fold(self) -> None:
        """`fold` with the lock held: each hit into its ``(tier, policy)`` entry of
        ``[hits, saved_ms, saved_tokens]`` (the totals are summed from those). The queued
        hits are taken off one by one (another thread may be appending) and counted alike
        in C (`Counter`): repeated hits on one entry are equal tuples, so the loop below
        runs once per kind of hit."""
        queued, by_hit = self.queued, self._hits
        popleft = queued.popleft
        batch = Counter([popleft() for _ in range(len(queued))])
        for (tier, ms, tokens, policy), times in batch.items():
            counts = by_hit.get((tier, policy))
            if counts is None:
                counts = by_hit[(tier, policy)] = [0, 0.0, 0]
            counts[0] += times
            counts[1] += ms * times
            counts[2] += tokens * times

    def _count(self, outcome: str, policy: str | None) -> None:
        """One call of ``outcome`` (not a hit) under ``policy``, with the lock held."""
        counts = self._by_label.get((outcome, None, policy))
        if counts is None:
            counts = self._by_label[(outcome, None, policy)] = [0, 0.0, 0]
        counts[0] += 1

    def miss(self, policy: str | None = None) -> None:
        with self._lock:
            self._misses += 1
            self._count("miss", policy)

    def bypass(self, reason: str, *, whole_call: bool = True, policy: str | None = None) -> None:
        """Count a bypass; ``whole_call=False`` for one tier skipped (e.g. too large)."""
        with self._lock:
            self._bypasses[reason] += 1
            self._bypassed_calls += whole_call
            if whole_call:
                self._count("bypass", policy)

    def error(self, tier: str) -> None:
        with self._lock:
            self._errors[tier] += 1

    def store(self) -> None:
        with self._lock:
            self._stores += 1

    def shadow(self, correct: bool) -> None:
        """Count a semantic match found in shadow mode, and whether it was right."""
        with self._lock:
            self._shadow["matches"] += 1
            self._shadow["correct"] += correct

    def verify(self, correct: bool) -> None:
        """Count a call made to verify a semantic match, and whether it was right."""
        with self._lock:
            self._verify["calls"] += 1
            self._verify["correct"] += correct

    def promotion(self) -> None:
        with self._lock:
            self._promotions += 1

    def snapshot(self) -> StatsSnapshot:
        """A consistent copy of all counters."""
        with self._lock:
            self._fold()
            by_tier: Counter[str] = Counter()
            saved_ms, saved_tokens = 0.0, 0
            for (tier, _), (count, ms, tokens) in self._hits.items():
                by_tier[tier] += int(count)
                saved_ms += ms
                saved_tokens += int(tokens)
            hits = sum(by_tier.values())
            lookups = hits + self._misses
            return StatsSnapshot(
                calls=lookups + self._bypassed_calls,
                hits=dict(by_tier),
                misses=self._misses,
                bypasses=dict(self._bypasses),
                errors=dict(self._errors),
                stores=self._stores,
                promotions=self._promotions,
                hit_rate=hits / lookups if lookups else 0.0,
                saved_ms=round(saved_ms, 3),
                saved_tokens=saved_tokens,
                shadow={"matches": self._shadow["matches"], "correct": self._shadow["correct"]},
                verify={"calls": self._verify["calls"], "correct": self._verify["correct"]},
            )

    def calls(self) -> dict[tuple[str, str | None, str | None], Calls]:
        """The calls by ``(outcome, tier, policy)``: the same calls `snapshot` counts
        (``tier`` is ``None`` but for hits, ``policy`` where none was decided)."""
        with self._lock:
            self._fold()
            found: dict[tuple[str, str | None, str | None], Calls] = {
                ("hit", tier, policy): Calls(int(n), ms, int(tokens))
                for (tier, policy), (n, ms, tokens) in self._hits.items()
            }
            for label, (n, ms, tokens) in self._by_label.items():
                found[label] = Calls(int(n), ms, int(tokens))
            return found


_FUNCTIONS: weakref.WeakSet[CacheStats] = weakref.WeakSet()


def function_stats() -> list[CacheStats]:
    """The counters of every decorated function alive in this process."""
    return list(_FUNCTIONS)


class Recorders:
    """The counters one call updates: its cache's and its decorated function's."""

    __slots__ = ("targets",)

    def __init__(self, *targets: CacheStats) -> None:
        self.targets = targets

    def hit(self, tier: str, saved_ms: float, saved_tokens: int, policy: str | None = None) -> None:
        hit = (tier, saved_ms, saved_tokens, policy)
        for target in self.targets:  # `CacheStats.queue`, inlined: the hot path of a hit
            queued = target.queued
            queued.append(hit)
            if len(queued) > _FOLD_AT:
                target.fold()

    def miss(self, policy: str | None = None) -> None:
        for target in self.targets:
            target.miss(policy)

    def bypass(self, reason: str, *, whole_call: bool = True, policy: str | None = None) -> None:
        for target in self.targets:
            target.bypass(reason, whole_call=whole_call, policy=policy)

    def error(self, tier: str) -> None:
        for target in self.targets:
            target.error(tier)

    def store(self) -> None:
        for target in self.targets:
            target.store()

    def promotion(self) -> None:
        for target in self.targets:
            target.promotion()

    def shadow(self, correct: bool) -> None:
        for target in self.targets:
            target.shadow(correct)

    def verify(self, correct: bool) -> None:
        for target in self.targets:
            target.verify(correct)
