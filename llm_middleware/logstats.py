"""Summaries of ``cache.result`` events read from JSON-lines logs, in constant memory."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .timeline import Timeline

__all__ = ["LogSummary", "summarize"]

_MARKS_TEXT = ('"cache.result"', '"cache.bypass"')
_MARKS_BYTES = tuple(mark.encode() for mark in _MARKS_TEXT)
_MAX_SAVED_MS = 1e12  # about 31 years: any larger value is not a call's duration
_MAX_TOKENS = 10**15


@dataclass
class _Rate:
    hits: int = 0
    calls: int = 0

    def add(self, hit: bool) -> None:
        self.calls += 1
        self.hits += hit

    def as_dict(self) -> dict[str, Any]:
        lookups = self.calls
        return {
            "calls": lookups,
            "hits": self.hits,
            "hit_rate": self.hits / lookups if lookups else 0.0,
        }


@dataclass
class LogSummary:
    """Counts over every ``cache.result`` (and ``cache.bypass``) event seen; every other
    line -- other events, other loggers' lines, text that is not JSON, a ``cache.result``
    whose fields have the wrong type -- is only counted as skipped. Only lines that
    mention those two events are parsed."""

    lines: int = 0
    skipped: int = 0
    events: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    hits_by_tier: Counter[str] = field(default_factory=Counter)
    by_policy: defaultdict[str, _Rate] = field(default_factory=lambda: defaultdict(_Rate))
    by_function: defaultdict[str, _Rate] = field(default_factory=lambda: defaultdict(_Rate))
    bypass_reasons: Counter[str] = field(default_factory=Counter)
    saved_ms: float = 0.0
    saved_tokens: int = 0
    outcomes_by_policy: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    saved_ms_by_function: defaultdict[str, float] = field(
        default_factory=lambda: defaultdict(float)
    )
    timeline: Timeline | None = None
    """Calls over time, when asked for (``summarize(..., timeline=True)``)."""
    shadow: Counter[str] = field(default_factory=Counter)
    """Shadow-mode semantic matches: ``matches`` and how many were ``correct``."""
    verify: Counter[str] = field(default_factory=Counter)
    """Verified semantic matching: ``calls`` made to judge a match, and how many
    found it ``correct`` (counted among the misses)."""

    def add_line(self, line: str | bytes) -> None:
        self.lines += 1
        marks = _MARKS_BYTES if isinstance(line, bytes) else _MARKS_TEXT
        if not any(mark in line for mark in marks):  # type: ignore[operator]
            self.skipped += 1  # another event, another logger's line, or not JSON
            return
        try:
            event = json.loads(line)
        except ValueError:
            self.skipped += 1
            return
        if not isinstance(event, dict):
            self.skipped += 1
            return
        name = event.get("event")
        if name == "cache.bypass" and isinstance(event.get("reason"), str):
            self.bypass_reasons[event["reason"]] += 1
        if name != "cache.result":
            if name != "cache.bypass":
                self.skipped += 1
            return
        fields = _result_fields(event)
        if fields is None:  # a field of the wrong type or out of range: unusable
            self.skipped += 1
            return
        outcome, tier, policy, function, saved_ms, saved_tokens = fields
        self.events += 1
        self.outcomes[outcome] += 1
        self.outcomes_by_policy[policy][outcome] += 1
        hit = outcome == "hit"
        if not hit:
            saved_ms, saved_tokens = 0.0, 0
        if self.timeline is not None:
            self.timeline.add(event.get("timestamp"), outcome, saved_ms, saved_tokens)
        if outcome == "bypass":
            return
        if outcome == "verify":
            self.verify["calls"] += 1
            self.verify["correct"] += event.get("verify_correct") is True
        if "shadow_match" in event:
            self.shadow["matches"] += 1
            self.shadow["correct"] += event.get("shadow_correct") is True
        if hit:
            self.hits_by_tier[tier] += 1
            self.saved_ms += saved_ms
            self.saved_tokens += saved_tokens
            self.saved_ms_by_function[function] += saved_ms
        self.by_policy[policy].add(hit)
        self.by_function[function].add(hit)

    def as_dict(self) -> dict[str, Any]:
        hits = self.outcomes["hit"]
        misses = self.outcomes["miss"] + self.outcomes["verify"]
        return {
            "lines": self.lines,
            "skipped_lines": self.skipped,
            "calls": self.events,
            "hits": hits,
            "misses": misses,
            "bypasses": self.outcomes["bypass"],
            "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
            "hits_by_tier": dict(self.hits_by_tier),
            "by_policy": {k: v.as_dict() for k, v in sorted(self.by_policy.items())},
            "by_function": {k: v.as_dict() for k, v in sorted(self.by_function.items())},
            "top_bypass_reasons": dict(self.bypass_reasons.most_common(5)),
            "saved_ms": round(self.saved_ms, 3),
            "saved_tokens": self.saved_tokens,
            "outcomes_by_policy": {k: dict(v) for k, v in sorted(self.outcomes_by_policy.items())},
            "saved_ms_by_function": {
                k: round(v, 3) for k, v in sorted(self.saved_ms_by_function.items())
            },
            "shadow": self._shadow(hits + misses),
            "verify": {"calls": self.verify["calls"], "correct": self.verify["correct"]},
        }

    def _shadow(self, lookups: int) -> dict[str, Any]:
        """Shadow mode: the hit rate semantic matching would have added, and how often
        its serves would have been wrong."""
        found, right = self.shadow["matches"], self.shadow["correct"]
        return {
            "matches": found,
            "correct": right,
            "would_be_hit_rate": found / lookups if lookups else 0.0,
            "would_be_wrong_rate": (found - right) / found if found else 0.0,
        }

    def render(self) -> str:
        data = self.as_dict()
        out = [
            f"calls: {data['calls']}  hits: {data['hits']}  misses: {data['misses']}  "
            f"bypassed: {data['bypasses']}  hit rate: {data['hit_rate']:.1%}",
            f"saved: {data['saved_ms'] / 1000:.2f} s, {data['saved_tokens']} tokens",
            f"lines read: {data['lines']} ({data['skipped_lines']} other lines skipped)",
        ]
        if data["hits_by_tier"]:
            tiers = ", ".join(f"{t}: {n}" for t, n in sorted(data["hits_by_tier"].items()))
            out.append(f"hits by tier: {tiers}")
        for title, rows in (("policy", data["by_policy"]), ("function", data["by_function"])):
            if rows:
                out.append(f"by {title}:")
                out += [
                    f"  {name:<40} {row['hits']:>7}/{row['calls']:<7} {row['hit_rate']:.1%}"
                    for name, row in rows.items()
                ]
        verify = data["verify"]
        if verify["calls"]:
            out.append(
                f"semantic verification calls: {verify['calls']} "
                f"({verify['correct']} found the match right)"
            )
        shadow = data["shadow"]
        if shadow["matches"]:
            out.append(
                f"shadow semantic matches: {shadow['matches']} (would-be hit rate "
                f"{shadow['would_be_hit_rate']:.1%}, wrong {shadow['would_be_wrong_rate']:.1%})"
            )
        if data["top_bypass_reasons"]:
            reasons = ", ".join(f"{r}: {n}" for r, n in data["top_bypass_reasons"].items())
            out.append(f"top bypass reasons: {reasons}")
        return "\n".join(out)


_TEXT = (str, type(None))


def _result_fields(event: dict[str, Any]) -> tuple[str, str, str, str, float, int] | None:
    """A ``cache.result`` event's fields, checked all at once before any is counted:
    ``(outcome, tier, policy, fn, saved_ms, saved_tokens)``, or ``None`` when one has
    the wrong type or an impossible value (a text ``saved_ms``, a negative count)."""
    outcome, tier, policy, fn = (event.get(k) for k in ("outcome", "tier", "policy", "fn"))
    saved_ms, saved_tokens = event.get("saved_ms"), event.get("saved_tokens")
    if saved_ms is None:
        saved_ms = 0.0
    if saved_tokens is None:
        saved_tokens = 0
    if not all(isinstance(text, _TEXT) for text in (outcome, tier, policy, fn)):
        return None
    if type(saved_ms) not in (int, float) or not 0.0 <= saved_ms < _MAX_SAVED_MS:
        return None  # NaN fails both comparisons
    if type(saved_tokens) is not int or not 0 <= saved_tokens < _MAX_TOKENS:
        return None
    return str(outcome), str(tier), str(policy), str(fn), float(saved_ms), saved_tokens


def summarize(
    lines: Iterable[str | bytes],
    progress: Callable[[int], None] | None = None,
    *,
    timeline: bool = False,
) -> LogSummary:
    """Summarize ``lines`` one at a time; ``progress`` gets the byte count read so far.
    ``timeline``: also count the calls over time (for the HTML report)."""
    summary = LogSummary(timeline=Timeline() if timeline else None)
    read = 0
    for number, line in enumerate(lines, 1):
        read += len(line)
        if line.strip():
            summary.add_line(line)
        if progress is not None and number % 65536 == 0:
            progress(read)
    return summary
