"""The soak's oracle: every answer is checked against the upstream call that produced it.

Each upstream call of a soak function is numbered and recorded with what it was called for:
the function, the namespace (tenant) and a digest of its arguments' content *as the function
saw them*. Its answer carries that number and digest (``fn|tenant|seq|digest``), so any answer
a caller receives names its origin. An answer is

- correct when its origin is a recorded call of the same function and namespace for exactly
  the content the caller passed (digest taken before the call; the caller mutates its
  arguments afterwards), served within that call's lifetime;
- cross-namespace when its origin was for the same function and content but another tenant;
- planted when it is a value the hostile writer put in the shared tier;
- wrong otherwise (another content's answer, or a lifetime overrun).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PLANTED", "Counts", "Oracle", "digest"]

PLANTED = "PLANTED"
"""What every answer the hostile writer plants starts with."""

LIFETIME_MARGIN_S = 1.0
"""Slack on the lifetime check: entries are dated by the writer's clock, checked by ours."""


def digest(content: Any) -> str:
    """A short digest of JSON data (arguments as the caller or the function saw them)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass
class Counts:
    """What a soak of one shared-tier kind counted."""

    calls: int = 0
    faults: int = 0
    wrong: int = 0
    cross_namespace: int = 0
    failed: int = 0
    planted: int = 0
    planted_served: int = 0
    slow: int = 0
    recoveries: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bump(self, name: str) -> None:
        """Count one more ``name``: workers of several threads count at once, and a
        plain ``+= 1`` on an attribute may lose one (a lost failure would hide it)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def note(self, what: str) -> None:
        """Keep the first few problems, for the report."""
        if len(self.examples) < 10:
            self.examples.append(what)


@dataclass(frozen=True)
class _Origin:
    fn: str
    tenant: str
    digest: str
    created: float
    ttl: float


class Oracle:
    """Numbers the upstream calls of one soak and judges the answers callers receive."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self._lock = threading.Lock()
        self._origins: list[_Origin] = []

    def answer(self, fn: str, tenant: str, content: Any, ttl: float) -> str:
        """The upstream call: record it and return its traceable answer."""
        seen = digest(content)
        with self._lock:
            self._origins.append(_Origin(fn, tenant, seen, time.time(), ttl))
            seq = len(self._origins)
        return f"{fn}|{tenant}|{seq}|{seen}"

    def check(self, fn: str, tenant: str, expected: str, answer: object) -> None:
        """Judge ``answer``, received by a caller of ``fn`` in ``tenant`` who passed
        content of digest ``expected``; count it."""
        counts = self.counts
        if isinstance(answer, str) and answer.startswith(PLANTED):
            counts.bump("planted_served")
            counts.note(f"planted answer served to {fn} in {tenant}")
            return
        verdict = self._verdict(fn, tenant, expected, answer)
        if verdict is None:
            return
        counts.bump("cross_namespace" if verdict == "cross" else "wrong")
        counts.note(f"{verdict}: {fn} in {tenant} for {expected} got {str(answer)[:120]!r}")

    def _verdict(self, fn: str, tenant: str, expected: str, answer: object) -> str | None:
        if not isinstance(answer, str):
            return f"not a str ({type(answer).__name__})"
        parts = answer.split("|")
        if len(parts) != 4 or not parts[2].isdigit():
            return "unrecognised"
        seq = int(parts[2])
        with self._lock:
            origin = self._origins[seq - 1] if 0 < seq <= len(self._origins) else None
        if origin is None or answer != f"{origin.fn}|{origin.tenant}|{seq}|{origin.digest}":
            return "forged"
        if origin.fn != fn or origin.digest != expected:
            return "another question's answer"
        if origin.tenant != tenant:
            return "cross"
        if time.time() > origin.created + origin.ttl + LIFETIME_MARGIN_S:
            return "served past its lifetime"
        return None
