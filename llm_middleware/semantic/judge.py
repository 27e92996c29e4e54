"""Verified matching after the LLM answered: judge a candidate's stored answer
against the fresh one, and keep what was learnt with the entry."""

from __future__ import annotations

from typing import Any

from ..keys import UnkeyableError, canonical_json
from .level import Probe, _text_of, same_answer
from .verify import observed

__all__ = ["judge_verified"]


def _answer_text(value: Any) -> str:
    text = _text_of(value)
    if text is not None:
        return text
    try:
        return canonical_json(value)
    except (UnkeyableError, TypeError, ValueError):
        return repr(value)


def judge_verified(probe: Probe, fresh: Any) -> bool | None:
    """Judge the candidate ``probe`` holds for verification against ``fresh``, and
    keep the observation with its entry (and in the evidence pooled across
    entries). ``None`` when there was nothing to judge, or the judge failed."""
    found, decision, match = probe.candidate, probe.verify, probe.match
    if found is None or decision is None or match.verifier is None:
        return None
    stored = found.hit.envelope.value
    judge = match.verify_judge
    try:
        if callable(judge):
            correct = bool(judge(_answer_text(stored), _answer_text(fresh)))
        elif judge == "exact":
            correct = stored == fresh or _answer_text(stored) == _answer_text(fresh)
        else:
            correct = same_answer(stored, fresh)
    except Exception:  # a failing judge: no verdict, never the caller's problem
        return None
    seen = observed(match.index.observations(probe.partition, found.key))
    learnt = match.verifier.learn(seen, found.similarity, correct)
    match.index.observe(
        probe.partition, found.key, tuple((o.similarity, o.correct) for o in learnt)
    )
    return correct
