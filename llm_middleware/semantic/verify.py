"""Verified semantic matching: when may a candidate match be served within the
user's error bound?

Each stored entry keeps a few observations of candidates matched to it: the
similarity of the candidate, and whether a judge found the fresh answer equal to
the stored one. Per entry, correctness is taken to rise with similarity: an entry
*vouches* for a candidate at least as similar as one it saw answered correctly
(and more similar than any it saw answered wrongly), and *refuses* one no more
similar than one it saw answered wrongly. How far such vouching can be trusted is
not assumed but measured: verifications are pooled across entries into a few
buckets, and a candidate is served only when the bucket's one-sided
Clopper-Pearson upper bound of the wrong rate (99% by default) is within
``max_wrong``. A candidate the entry has no opinion on falls back on a prior
pooled across all entries, by similarity band, held to the same bound; that is
how a new entry can serve.

Everything not served is answered by the LLM. It is *verified* (the fresh answer
judged against the stored one, and the observation kept) when learning can pay:
while a bucket has not yet shown its bound, for a sampled ``explore`` fraction of
what would be served (so the estimate stays honest), and where the prior says a
match is at least ``verify_above`` likely to be right. Otherwise it is a plain
miss. Pure: no I/O, no clock; a seeded ``random.Random`` decides exploration.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from ..errors import ConfigurationError

__all__ = [
    "MISS",
    "SERVE",
    "VERIFY",
    "Decision",
    "Observation",
    "Verifier",
    "observed",
    "upper_bound",
    "within",
]

SERVE, VERIFY, MISS = "serve", "verify", "miss"
TOLERANCE = 0.0005  # similarities this close count as the same (float16 vectors when shared)
BANDS = 50  # the prior's similarity bands over [0, 1]


class Observation(NamedTuple):
    """A candidate matched to an entry: its similarity and whether it was right."""

    similarity: float
    correct: bool


class Decision(NamedTuple):
    """What to do with a candidate: ``action`` (serve, verify, miss), the pooled
    bucket whose evidence decided it (``at``/``above``: the entry vouches at or
    above an observed point; ``prior:N``: similarity band N; ``refused``: the
    entry saw a wrong answer at least this similar), that bucket's verified
    candidates ``seen`` and how many were ``wrong``, and whether a servable
    candidate was picked to ``explore``."""

    action: str
    bucket: str
    seen: int = 0
    wrong: int = 0
    explore: bool = False


@lru_cache(maxsize=8192)
def within(wrong: int, seen: int, rate: float, confidence: float) -> bool:
    """Whether the one-sided upper bound of the wrong rate after ``wrong`` of
    ``seen`` is within ``rate``: seeing so few errors would be unlikely (below
    ``1 - confidence``) were the true rate ``rate``."""
    return seen > 0 and wrong < seen * rate and _cdf(wrong, seen, rate) <= 1.0 - confidence


def observed(pairs: Sequence[tuple[float, bool]]) -> tuple[Observation, ...]:
    """Observations from plain ``(similarity, correct)`` pairs (as an entry keeps them)."""
    return tuple(Observation(float(s), bool(ok)) for s, ok in pairs)


def upper_bound(wrong: int, seen: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound of a rate after ``wrong`` of ``seen``:
    the largest p with P(Binomial(seen, p) <= wrong) >= 1 - confidence."""
    if seen <= 0:
        return 1.0
    if wrong >= seen:
        return 1.0
    alpha = 1.0 - confidence
    lo, hi = wrong / seen, 1.0
    for _ in range(60):  # bisection: the CDF falls as p rises
        mid = (lo + hi) / 2
        if _cdf(wrong, seen, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def _cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    whole = math.lgamma(n + 1)
    terms = [
        whole - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass
class _Count:
    seen: int = 0
    wrong: int = 0


class Verifier:
    """The decision rule and the evidence pooled across entries (thread-safe).

    - ``max_wrong``: the bound on the fraction of served candidates that are wrong.
    - ``explore``: the fraction of servable candidates verified anyway.
    - ``verify_above``: verify a candidate the entry has no opinion on when the
      prior's estimate of it being right is at least this (default 0.4: a right
      match asked two or three more times then pays for its verification).
    - ``warmup``: verify that many candidates of a similarity band before judging it.
    - ``confidence``: of the upper bounds (default 0.99).
    - ``max_observations``: kept per entry (the newest).
    """

    def __init__(
        self,
        max_wrong: float,
        *,
        explore: float = 0.02,
        verify_above: float = 0.4,
        confidence: float = 0.99,
        max_observations: int = 16,
        warmup: int = 10,
        rng: random.Random | None = None,
    ) -> None:
        for name, value in (
            ("max_wrong", max_wrong),
            ("explore", explore),
            ("verify_above", verify_above),
            ("confidence", confidence),
        ):
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigurationError(f"{name} must be between 0 and 1, got {value!r}")
        if not isinstance(max_observations, int) or max_observations < 1:
            raise ConfigurationError(
                f"max_observations must be a positive int, got {max_observations!r}"
            )
        self.max_wrong, self.explore = float(max_wrong), float(explore)
        self.verify_above, self.confidence = float(verify_above), float(confidence)
        self.max_observations, self.warmup = max_observations, warmup
        self.rng = rng or random.Random()
        self._counts: dict[str, _Count] = {}
        self._lock = threading.Lock()

    def decide(self, observations: Sequence[Observation], similarity: float) -> Decision:
        """What to do with a candidate at ``similarity`` to an entry that has made
        ``observations``."""
        bucket = _bucket(observations, similarity)
        if bucket == "refused":
            return Decision(MISS, bucket)
        with self._lock:
            count = self._counts.get(bucket) or _Count()
            seen, wrong = count.seen, count.wrong
            explore = self.rng.random() < self.explore
        if within(wrong, seen, self.max_wrong, self.confidence):
            return Decision(VERIFY if explore else SERVE, bucket, seen, wrong, explore)
        if seen < self.warmup:
            return Decision(VERIFY, bucket, seen, wrong)  # too little known of the bucket
        right = (seen - wrong) / seen
        return Decision(VERIFY if right >= self.verify_above else MISS, bucket, seen, wrong)

    def learn(
        self, observations: Sequence[Observation], similarity: float, correct: bool
    ) -> tuple[Observation, ...]:
        """Record a verified candidate: in the pooled bucket it fell in, and in the
        entry's observations (returned, the newest ``max_observations``)."""
        bucket = _bucket(observations, similarity)
        if bucket != "refused":
            with self._lock:
                count = self._counts.setdefault(bucket, _Count())
                count.seen += 1
                count.wrong += not correct
        kept = (*observations, Observation(round(float(similarity), 6), bool(correct)))
        return kept[-self.max_observations :]

    def evidence(self) -> dict[str, tuple[int, int]]:
        """The pooled evidence by bucket: ``(seen, wrong)``."""
        with self._lock:
            return {name: (c.seen, c.wrong) for name, c in sorted(self._counts.items())}


def _bucket(observations: Sequence[Observation], similarity: float) -> str:
    """Which evidence applies to a candidate at ``similarity`` (see `Decision`)."""
    wrong_top = max((o.similarity for o in observations if not o.correct), default=-math.inf)
    support = [
        o.similarity for o in observations if o.correct and o.similarity > wrong_top + TOLERANCE
    ]
    if support and similarity >= min(support) - TOLERANCE:
        return "at" if any(abs(similarity - s) <= TOLERANCE for s in support) else "above"
    if similarity <= wrong_top + TOLERANCE:
        return "refused"
    band = min(BANDS - 1, max(0, int(similarity * BANDS)))
    return f"prior:{band}"
