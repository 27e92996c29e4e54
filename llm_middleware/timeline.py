"""Hit rate and savings over time, from ``cache.result`` events, in bounded memory.

Events fall into buckets of equal width along the time axis: seconds since the epoch
when the events carry a ``timestamp`` (a Unix time, or ISO 8601 as structlog's
``TimeStamper`` writes it), else the position of the event in the log. Whenever the
events would span more than `MAX_BUCKETS` buckets, the width doubles and neighbouring
buckets merge, so a log of any length or time span keeps at most that many.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["MAX_BUCKETS", "Bucket", "Timeline", "parse_timestamp"]

MAX_BUCKETS = 120


def parse_timestamp(value: Any) -> float | None:
    """Seconds since the epoch for a Unix time or an ISO 8601 text; ``None`` otherwise.
    An ISO time without a zone is read as UTC (structlog writes UTC by default)."""
    kind = type(value)
    if kind is float or kind is int:
        return float(value)
    if kind is not str:
        return None
    text: str = value
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


@dataclass
class Bucket:
    """The calls of one stretch of time (or of the log)."""

    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    saved_ms: float = 0.0
    saved_tokens: int = 0

    def merge(self, other: Bucket) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.bypasses += other.bypasses
        self.saved_ms += other.saved_ms
        self.saved_tokens += other.saved_tokens

    @property
    def hit_rate(self) -> float | None:
        """Hits per lookup (bypasses are not lookups); ``None`` without lookups."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


class Timeline:
    """Buckets of calls along one axis: ``"time"`` (seconds since the epoch) when the
    first event has a timestamp, else ``"calls"`` (the event's position). On the time
    axis, events without a readable timestamp are only counted (`untimed`)."""

    def __init__(self) -> None:
        self.axis: str | None = None
        self.width = 1.0
        self.buckets: dict[int, Bucket] = {}
        self.untimed = 0
        self._low = 0
        self._high = -1
        self._seen = 0

    def add(self, timestamp: Any, outcome: str, saved_ms: float, saved_tokens: int) -> None:
        """Count one call closing with ``outcome`` (hit, miss or bypass)."""
        self._seen += 1
        when = parse_timestamp(timestamp) if self.axis != "calls" else None
        if self.axis is None:
            self.axis = "calls" if when is None else "time"
        if self.axis == "calls":
            when = float(self._seen - 1)
        elif when is None:
            self.untimed += 1
            return
        index = int(when // self.width)
        if not self.buckets:
            self._low = self._high = index
        elif index < self._low or index > self._high:
            self._low, self._high = min(self._low, index), max(self._high, index)
            while self._high - self._low >= MAX_BUCKETS:
                self._coarsen()
            index = int(when // self.width)
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = Bucket()
        if outcome == "hit":
            bucket.hits += 1
            bucket.saved_ms += saved_ms
            bucket.saved_tokens += saved_tokens
        elif outcome in ("miss", "verify"):
            bucket.misses += 1
        else:
            bucket.bypasses += 1

    def _coarsen(self) -> None:
        """Double the width: bucket ``k`` becomes ``k // 2`` (exact, widths being powers
        of two of the first)."""
        self.width *= 2
        merged: dict[int, Bucket] = {}
        for index, bucket in self.buckets.items():
            into = merged.get(index // 2)
            if into is None:
                merged[index // 2] = bucket
            else:
                into.merge(bucket)
        self.buckets = merged
        self._low //= 2
        self._high //= 2

    def series(self) -> list[tuple[float, Bucket]]:
        """Every bucket from the first to the last (empty ones included), as
        ``(start, bucket)``: ``start`` in seconds since the epoch or in calls."""
        if not self.buckets:
            return []
        return [
            (index * self.width, self.buckets.get(index) or Bucket())
            for index in range(self._low, self._high + 1)
        ]
