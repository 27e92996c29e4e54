"""Thread-safe counters behind `MultiLevelCache.stats()` and ``cache_info()``."""

from __future__ import annotations

import threading
import weakref
from collections import Counter, deque
from itertools import repeat, starmap
from typing import NamedTuple, TypeAlias, TypedDict

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


_Kind: TypeAlias = tuple[str, float, int, "str | None"]
"""A kind of hit: ``(tier, saved_ms, saved_tokens, policy)``."""
_Hit: TypeAlias = tuple[str, float, int, "str | None", "tuple[CacheStats, ...]"]
"""A queued hit: its kind, and the other counters it counts for."""

_FOLD_AT = 512
"""Queued hits beyond this many are folded into the counters by the next hit."""


class CacheStats:
    """Counters for hits per tier, misses, bypasses by reason, errors by tier,
    stores, promotions, and the time and tokens hits saved.

    A hit -- the hot path -- takes no lock: it is queued (``deque.append`` is atomic)
    and folded into the counters in batches, and before every snapshot. A hit that
    counts for several (a cache's and a function's, see `Recorders`) is queued once,
    by the first, and handed to the others when folded; their snapshots fold it first.

    Calls are also counted by ``(outcome, tier, policy)`` (`calls`), the labels of the
    metrics exporters. ``function``: the decorated function these counters are of;
    such counters are listed by `function_stats` while they live."""

    __slots__ = (
        "__weakref__",
        "_by_label",
        "_bypassed_calls",
        "_bypasses",
        "_errors",
        "_feeders",
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
        self.queued: deque[_Hit] = deque()
        self._feeders: set[CacheStats] = set()  # whose queues may hold hits of ours
        self.function = function
        self.clear()
        if function is not None:
            _FUNCTIONS.add(self)

    def clear(self) -> None:
        """Reset every counter to zero."""
        self._fold_feeders()
        with self._lock:
            handed = self._fold()  # the queued hits still count for the others
            self._hits: dict[tuple[str, str | None], list[float]] = {}
            self._bypasses: Counter[str] = Counter()
            self._errors: Counter[str] = Counter()
            self._shadow: Counter[str] = Counter()
            self._verify: Counter[str] = Counter()
            self._misses = self._bypassed_calls = self._stores = self._promotions = 0
            self._by_label: dict[tuple[str, str | None, str | None], list[float]] = {}
        _hand_over(handed)

    def hit(self, tier: str, saved_ms: float, saved_tokens: int, policy: str | None = None) -> None:
        queued = self.queued
        queued.append((tier, saved_ms, saved_tokens, policy, ()))
        if len(queued) > _FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Move the queued hits into the counters (and hand over the others' share)."""
        with self._lock:
            handed = self._fold()
        _hand_over(handed)

    def _fold(self) -> list[tuple[CacheStats, _Kind, int]]:
        """`fold` with the lock held; returns the hits to count for others (counted by
        `_hand_over` once the lock is released). Each hit goes into its ``(tier,
        policy)`` entry of ``[hits, saved_ms, saved_tokens]`` (the totals are summed from
        those). The queued hits are taken off one by one (another thread may be
        appending) and counted alike in C (`Counter`): repeated hits on one entry are
        equal tuples, so the loop below runs once per kind of hit."""
        queued = self.queued
        batch = Counter(starmap(queued.popleft, repeat((), len(queued))))
        handed: list[tuple[CacheStats, _Kind, int]] = []
        for (tier, ms, tokens, policy, others), times in batch.items():
            kind = (tier, ms, tokens, policy)
            self._add_hits(kind, times)
            handed.extend((other, kind, times) for other in others)
        return handed

    def _add_hits(self, kind: _Kind, times: int) -> None:
        """Count ``times`` hits of ``kind``, with the lock held."""
        tier, ms, tokens, policy = kind
        counts = self._hits.get((tier, policy))
        if counts is None:
            counts = self._hits[(tier, policy)] = [0, 0.0, 0]
        counts[0] += times
        counts[1] += ms * times
        counts[2] += tokens * times

    def _fold_feeders(self) -> None:
        """Fold the queues that may hold hits of ours (see `Recorders`)."""
        for feeder in tuple(self._feeders):  # a copy: a set is added to as calls come
            feeder.fold()

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
        self._fold_feeders()
        with self._lock:
            handed = self._fold()
            by_tier: Counter[str] = Counter()
            saved_ms, saved_tokens = 0.0, 0
            for (tier, _), (count, ms, tokens) in self._hits.items():
                by_tier[tier] += int(count)
                saved_ms += ms
                saved_tokens += int(tokens)
            hits = sum(by_tier.values())
            lookups = hits + self._misses
            snapshot = StatsSnapshot(
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
        _hand_over(handed)
        return snapshot

    def calls(self) -> dict[tuple[str, str | None, str | None], Calls]:
        """The calls by ``(outcome, tier, policy)``: the same calls `snapshot` counts
        (``tier`` is ``None`` but for hits, ``policy`` where none was decided)."""
        self._fold_feeders()
        with self._lock:
            handed = self._fold()
            found: dict[tuple[str, str | None, str | None], Calls] = {
                ("hit", tier, policy): Calls(int(n), ms, int(tokens))
                for (tier, policy), (n, ms, tokens) in self._hits.items()
            }
            for label, (n, ms, tokens) in self._by_label.items():
                found[label] = Calls(int(n), ms, int(tokens))
        _hand_over(handed)
        return found


_FUNCTIONS: weakref.WeakSet[CacheStats] = weakref.WeakSet()


def function_stats() -> list[CacheStats]:
    """The counters of every decorated function alive in this process."""
    return list(_FUNCTIONS)


def _hand_over(handed: list[tuple[CacheStats, _Kind, int]]) -> None:
    """Count hits folded by one `CacheStats` for the others they count for."""
    for other, kind, times in handed:
        with other._lock:
            other._add_hits(kind, times)


class Recorders:
    """The counters one call updates: its cache's and its decorated function's.

    A hit -- the hot path -- is queued once, by the first, for all of them."""

    __slots__ = ("_first", "_others", "targets")

    def __init__(self, *targets: CacheStats) -> None:
        self.targets = targets
        self._first = targets[0]
        self._others = targets[1:]
        for other in self._others:
            other._feeders.add(self._first)

    def hit(self, tier: str, saved_ms: float, saved_tokens: int, policy: str | None = None) -> None:
        first = self._first
        queued = first.queued
        queued.append((tier, saved_ms, saved_tokens, policy, self._others))
        if len(queued) > _FOLD_AT:
            first.fold()

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
