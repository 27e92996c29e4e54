"""Measuring a classifier against labelled questions (``llm-middleware classify --eval``).

A labelled file is a JSON list of ``{"question": ..., "fact_type": ...}`` with the fact
types of FreshQA (Vu et al. 2023, "FreshLLMs"): ``never-changing``, ``slow-changing``,
``fast-changing``. Other keys are ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError
from .policy import CachePolicy, Classification, Classifier, IntentRules, classify_with

__all__ = ["FACT_TYPES", "Evaluation", "evaluate", "read_labelled"]

FACT_TYPES = ("never-changing", "slow-changing", "fast-changing")
NEVER, FAST = "never-changing", "fast-changing"


@dataclass(frozen=True)
class Labelled:
    """One labelled question."""

    question: str
    fact_type: str


def read_labelled(path: str | os.PathLike[str]) -> list[Labelled]:
    """The labelled questions of a JSON file; a malformed file is a `ConfigurationError`."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(doc, list):
        raise ConfigurationError(f"{path} must hold a JSON list of labelled questions")
    items = []
    for i, entry in enumerate(doc):
        question = entry.get("question") if isinstance(entry, dict) else None
        fact_type = entry.get("fact_type") if isinstance(entry, dict) else None
        if not isinstance(question, str) or fact_type not in FACT_TYPES:
            raise ConfigurationError(
                f"{path}: entry {i} needs a string question and a fact_type of "
                f"{', '.join(FACT_TYPES)}; got {entry!r}"
            )
        items.append(Labelled(question, fact_type))
    return items


@dataclass(frozen=True)
class Rate:
    """``count`` of ``total`` questions, as a fraction too."""

    count: int
    total: int

    @property
    def fraction(self) -> float:
        """count / total (0 when there is nothing to count)."""
        return self.count / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.count} of {self.total} ({self.fraction:.1%})"


@dataclass
class Evaluation:
    """The confusion matrix of fact type x policy, and which questions went wrong."""

    matrix: dict[str, dict[CachePolicy, int]] = field(
        default_factory=lambda: {t: dict.fromkeys(CachePolicy, 0) for t in FACT_TYPES}
    )
    errors: list[tuple[str, Labelled, Classification]] = field(default_factory=list)

    def total(self, fact_type: str) -> int:
        """How many questions have ``fact_type``."""
        return sum(self.matrix[fact_type].values())

    @property
    def stale_risk(self) -> Rate:
        """Fast-changing questions given LONG or MEDIUM: answers kept while they go stale."""
        row = self.matrix[FAST]
        return Rate(row[CachePolicy.LONG] + row[CachePolicy.MEDIUM], self.total(FAST))

    @property
    def fast_never(self) -> Rate:
        """Fast-changing questions given NEVER."""
        return Rate(self.matrix[FAST][CachePolicy.NEVER], self.total(FAST))

    @property
    def wasted(self) -> Rate:
        """Never-changing questions given NEVER: answers that could have been kept."""
        return Rate(self.matrix[NEVER][CachePolicy.NEVER], self.total(NEVER))

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain JSON data."""

        def rate(r: Rate) -> dict[str, Any]:
            return {"count": r.count, "total": r.total, "fraction": round(r.fraction, 4)}

        return {
            "matrix": {t: {p.value: n for p, n in row.items()} for t, row in self.matrix.items()},
            "stale_risk": rate(self.stale_risk),
            "fast_never": rate(self.fast_never),
            "wasted": rate(self.wasted),
            "errors": [
                {
                    "kind": kind,
                    "question": item.question,
                    "fact_type": item.fact_type,
                    "policy": verdict.policy.value,
                    "rule": verdict.rule,
                }
                for kind, item, verdict in self.errors
            ],
        }

    def render(self, show_errors: bool = False) -> str:
        """The matrix and the three rates as a text table."""
        policies = list(CachePolicy)
        lines = [f"{'fact type':<16}" + "".join(f"{p.name:>8}" for p in policies) + "   total"]
        for fact_type, row in self.matrix.items():
            cells = "".join(f"{row[p]:>8}" for p in policies)
            lines.append(f"{fact_type:<16}{cells}{self.total(fact_type):>8}")
        lines += [
            "",
            f"stale risk    {self.stale_risk}: fast-changing given LONG or MEDIUM",
            f"fast -> NEVER {self.fast_never}: fast-changing given NEVER",
            f"wasted        {self.wasted}: never-changing given NEVER",
        ]
        if show_errors and self.errors:
            lines.append("")
            for kind, item, verdict in self.errors:
                lines.append(
                    f"{kind:<10} {verdict.policy.name:<6} {item.question}  [{verdict.rule}]"
                )
        return "\n".join(lines)


def _error_kind(item: Labelled, policy: CachePolicy) -> str | None:
    if item.fact_type == FAST and policy in (CachePolicy.LONG, CachePolicy.MEDIUM):
        return "stale"
    if item.fact_type == FAST and policy is not CachePolicy.NEVER:
        return "not-never"
    if item.fact_type == NEVER and policy is CachePolicy.NEVER:
        return "wasted"
    return None


def evaluate(classifier: IntentRules | Classifier, items: Iterable[Labelled]) -> Evaluation:
    """Classify every labelled question and count the policies per fact type."""
    result = Evaluation()
    for item in items:
        verdict = classify_with(classifier, item.question)
        result.matrix[item.fact_type][verdict.policy] += 1
        kind = _error_kind(item, verdict.policy)
        if kind is not None:
            result.errors.append((kind, item, verdict))
    return result


def policy_shares(classifier: IntentRules | Classifier, prompts: Sequence[str]) -> dict[str, float]:
    """The share of ``prompts`` each policy gets (for unlabelled traffic)."""
    counts = dict.fromkeys(CachePolicy, 0)
    for prompt in prompts:
        counts[classify_with(classifier, prompt).policy] += 1
    return {p.value: (n / len(prompts) if prompts else 0.0) for p, n in counts.items()}
