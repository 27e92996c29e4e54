"""From an error rate to a similarity threshold, measured on labelled question pairs.

The protocol (shared by ``llm-middleware semantic calibrate`` and
``benchmarks.semantic``): the pairs are taken in chunks of 4,000; in each chunk
every distinct ``text_a`` is stored and every ``text_b`` is asked. A question's
answer is its connected component in the graph of duplicate (label 1) pairs, so
true duplicates share an answer. A query is answered by the first level that
matches: the exact text, its normal form, then the most similar stored text.
A serve is correct when the served answer is the query's own.

A threshold is chosen with a margin: the lowest similarity at which a one-sided
99% Clopper-Pearson upper bound of the wrong-serve rate, among the semantic
serves at or above it, is within ``max_wrong``. So the stated rate holds on pairs
the calibration never saw, not only on the ones it fitted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ConfigurationError
from .normal import normal_form

__all__ = [
    "CHUNK",
    "DEFAULT_GRID",
    "CalibrationTable",
    "Observations",
    "Pair",
    "Row",
    "answer_ids",
    "calibrate",
    "load_pairs",
    "observe",
    "threshold_for",
]

CHUNK = 4000
DEFAULT_GRID = (0.005, 0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30)
CONFIDENCE = 0.99
NEVER = 2.0  # a threshold no cosine reaches: no semantic serve at all


@dataclass(frozen=True)
class Pair:
    text_a: str
    text_b: str
    label: int


def load_pairs(path: str | Path) -> list[Pair]:
    """A JSON list of ``{"text_a", "text_b", "label": 0 | 1}``; `ConfigurationError`
    naming the first bad item otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read labelled pairs from {path}: {exc}") from exc
    if not isinstance(data, list):
        raise ConfigurationError(f"{path}: expected a JSON list of pairs")
    pairs = []
    for i, item in enumerate(data):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("text_a"), str)
            or not isinstance(item.get("text_b"), str)
            or item.get("label") not in (0, 1)
        ):
            raise ConfigurationError(f"{path}: item {i} is not {{text_a, text_b, label: 0|1}}")
        pairs.append(Pair(item["text_a"], item["text_b"], int(item["label"])))
    return pairs


def answer_ids(pairs: Iterable[Pair]) -> dict[str, int]:
    """Each text's answer: its connected component among duplicate pairs."""
    parent: dict[str, str] = {}

    def root(text: str) -> str:
        parent.setdefault(text, text)
        while parent[text] != text:
            parent[text] = parent[parent[text]]
            text = parent[text]
        return text

    for pair in pairs:
        a, b = root(pair.text_a), root(pair.text_b)
        if pair.label == 1 and a != b:
            parent[a] = b
    roots: dict[str, int] = {}
    return {text: roots.setdefault(root(text), len(roots)) for text in list(parent)}


@dataclass
class Observations:
    """Per query: the level that matched (``exact``, ``normalized``, ``semantic``),
    the similarity of the nearest stored text, whether its answer was the query's
    own, and whether the query's own answer was stored at all (a duplicate query)."""

    level: list[str] = field(default_factory=list)
    similarity: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    duplicate: list[bool] = field(default_factory=list)

    def extend(self, other: Observations) -> None:
        self.level += other.level
        self.similarity += other.similarity
        self.correct += other.correct
        self.duplicate += other.duplicate


@dataclass(frozen=True)
class Row:
    """What a setting serves: counts pooled over chunks."""

    name: str
    served: int
    correct: int
    duplicates: int

    @property
    def precision(self) -> float:
        return self.correct / self.served if self.served else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.duplicates if self.duplicates else 0.0

    @property
    def wrong_rate(self) -> float:
        return 1.0 - self.precision

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "served": self.served, "correct": self.correct,
            "precision": round(self.precision, 6), "recall": round(self.recall, 6),
            "wrong_rate": round(self.wrong_rate, 6),
        }  # fmt: skip


Vectorize = Callable[[Sequence[str]], Any]


class StoredChunk(NamedTuple):
    """The stored side of one chunk of the protocol: its distinct ``text_a`` in order,
    the same as a set (the exact level), by normal form (the normalized level), and
    the answer ids they carry."""

    texts: list[str]
    exact: set[str]
    normal: dict[str, str]
    ids: set[int]


def stored_chunk(part: Sequence[Pair], ids: dict[str, int]) -> StoredChunk:
    """What one chunk of ``pairs`` stores: every distinct ``text_a``."""
    texts = list(dict.fromkeys(p.text_a for p in part))
    normal: dict[str, str] = {}
    for text in texts:
        normal.setdefault(normal_form(text), text)
    return StoredChunk(texts, set(texts), normal, {ids[t] for t in texts})


def observe(pairs: Sequence[Pair], vectors: Vectorize, *, chunk: int = CHUNK) -> Observations:
    """Run the protocol over ``pairs``; ``vectors(texts)`` embeds (unit rows)."""
    import numpy as np

    ids = answer_ids(pairs)
    seen = Observations()
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        stored, exact, normal, stored_ids = stored_chunk(part, ids)
        matrix = vectors(stored)
        queries = [p.text_b for p in part]
        sims = vectors(queries) @ matrix.T
        best = sims.argmax(axis=1)
        for i, query in enumerate(queries):
            seen.duplicate.append(ids[query] in stored_ids)
            if query in exact:
                seen.level.append("exact")
                seen.similarity.append(1.0)
                seen.correct.append(True)
                continue
            match = normal.get(normal_form(query))
            if match is not None:
                seen.level.append("normalized")
                seen.similarity.append(1.0)
                seen.correct.append(ids[match] == ids[query])
                continue
            nearest = stored[int(best[i])]
            seen.level.append("semantic")
            seen.similarity.append(float(np.float32(sims[i, best[i]])))
            seen.correct.append(ids[nearest] == ids[query])
    return seen


def evaluate(name: str, seen: Observations, threshold: float) -> Row:
    """The serves at ``threshold`` (exact and normalized levels always serve)."""
    served = correct = 0
    for level, sim, ok in zip(seen.level, seen.similarity, seen.correct, strict=True):
        if level != "semantic" or sim >= threshold:
            served += 1
            correct += ok
    return Row(name, served, correct, sum(seen.duplicate))


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k >= n:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_p
        + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def threshold_for(seen: Observations, max_wrong: float, confidence: float = CONFIDENCE) -> float:
    """The lowest similarity whose semantic serves (all at or above it) have a
    wrong-serve rate within ``max_wrong`` at ``confidence`` (Clopper-Pearson upper
    bound); `NEVER` when no threshold qualifies."""
    if not 0 < max_wrong < 1:
        raise ConfigurationError(f"max_wrong must be between 0 and 1, got {max_wrong!r}")
    alpha = 1.0 - confidence
    semantic = sorted(
        (
            (sim, ok)
            for level, sim, ok in zip(seen.level, seen.similarity, seen.correct, strict=True)
            if level == "semantic"
        ),
        reverse=True,
    )
    chosen, served, wrong = NEVER, 0, 0
    for i, (sim, ok) in enumerate(semantic):
        served += 1
        wrong += not ok
        if i + 1 < len(semantic) and semantic[i + 1][0] == sim:
            continue  # a threshold serves every query of equal similarity
        # the upper bound is within max_wrong when seeing <= wrong errors would be
        # unlikely (below alpha) were the true rate max_wrong
        if wrong < served * max_wrong and _binomial_cdf(wrong, served, max_wrong) <= alpha:
            chosen = sim
    return chosen


@dataclass(frozen=True)
class CalibrationTable:
    """Thresholds by ``max_wrong`` for one embedder, and how they were measured."""

    embedder: str
    thresholds: Mapping[float, float]
    pairs: int = 0
    confidence: float = CONFIDENCE
    source: str = ""

    def threshold(self, max_wrong: float) -> float:
        """The threshold of the largest calibrated rate not above ``max_wrong`` (never
        a looser one); `ConfigurationError` below the smallest calibrated rate."""
        usable = [rate for rate in self.thresholds if rate <= max_wrong + 1e-12]
        if not usable:
            rates = ", ".join(str(r) for r in sorted(self.thresholds))
            raise ConfigurationError(
                f"no calibration of {self.embedder} for max_wrong={max_wrong}: "
                f"calibrated rates are {rates}"
            )
        return self.thresholds[max(usable)]

    def as_json(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "pairs": self.pairs,
            "confidence": self.confidence,
            "source": self.source,
            "chunk": CHUNK,
            "thresholds": {
                str(k): math.ceil(v * 1e6) / 1e6 for k, v in sorted(self.thresholds.items())
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalibrationTable:
        try:
            thresholds = {float(k): float(v) for k, v in data["thresholds"].items()}
            return cls(
                str(data["embedder"]), thresholds, int(data.get("pairs", 0)),
                float(data.get("confidence", CONFIDENCE)), str(data.get("source", "")),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(f"not a calibration table: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> CalibrationTable:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read calibration table {path}: {exc}") from exc

    @classmethod
    def shipped(cls, embedder: str) -> CalibrationTable | None:
        """The table shipped with the package for ``embedder``, if any."""
        from importlib import resources

        item = resources.files("llm_middleware.semantic").joinpath(f"tables/{embedder}.json")
        if not item.is_file():
            return None
        return cls.from_json(json.loads(item.read_text(encoding="utf-8")))


def calibrate(
    pairs: Sequence[Pair],
    vectors: Vectorize,
    embedder: str,
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    source: str = "",
) -> CalibrationTable:
    """A table for ``embedder`` from labelled ``pairs``."""
    seen = observe(pairs, vectors)
    table = {rate: threshold_for(seen, rate) for rate in grid}
    return CalibrationTable(embedder, table, len(pairs), CONFIDENCE, source)
