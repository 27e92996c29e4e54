"""Verified semantic matching on a stream where entries can learn
(``python -m benchmarks.semantic --pairs PATH --verified``).

The chunked pairs protocol of ``llm_middleware.semantic.calibration`` (chunks of
4,000 pairs, every distinct ``text_a`` stored, answers by connected component of
the duplicate pairs), but instead of asking each ``text_b`` once, each chunk is
asked a seeded stream of 12,000 queries drawn with replacement from its
``text_b`` (about three per stored entry). The LLM is an oracle returning the
question's answer id; the judge compares answer ids. Queries never join the
stored set, so every repeat is matched against the stored entries again: what a
verified entry learnt is what lets it serve.

A query is answered by the first level that matches: exact text, normal form,
then the most similar stored text, served or verified by the `Verifier` (one per
``max_wrong``, whose pooled evidence carries from chunk to chunk, as in a
long-running process whose entries turn over; per-entry observations start empty
with each chunk's entries). Static rows (calibrated thresholds, peers' cosines)
run on the same streams. Each verification is charged as one LLM call:
``net_saved`` = served - verify calls, net recall = (correct serves - verify
calls) / queries whose answer was stored.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llm_middleware.semantic.calibration import (
    CHUNK,
    CalibrationTable,
    Pair,
    answer_ids,
    stored_chunk,
)
from llm_middleware.semantic.normal import normal_form
from llm_middleware.semantic.verify import SERVE, VERIFY, Observation, Verifier

RATES = (0.01, 0.02, 0.05)
STREAM = 12_000
STATIC = (0.80, 0.90)


@dataclass
class Tally:
    """What one setting did over the streams."""

    name: str
    served: int = 0
    correct: int = 0
    verify_calls: int = 0
    duplicates: int = 0

    def row(self) -> dict[str, Any]:
        wrong = self.served - self.correct
        net = self.correct - self.verify_calls
        return {
            "name": self.name,
            "served": self.served,
            "correct": self.correct,
            "wrong": wrong,
            "precision": round(self.correct / self.served if self.served else 1.0, 6),
            "recall": round(self.correct / self.duplicates if self.duplicates else 0.0, 6),
            "wrong_rate": round(wrong / self.served if self.served else 0.0, 6),
            "verify_calls": self.verify_calls,
            "net_saved": self.served - self.verify_calls,
            "net_recall": round(net / self.duplicates if self.duplicates else 0.0, 6),
        }


@dataclass(frozen=True)
class Query:
    """A query of the stream: its level, nearest stored text and similarity, and
    whether that text's answer is the query's own; whether its answer was stored."""

    level: str
    entry: str
    similarity: float
    correct: bool
    duplicate: bool


def streams(
    pairs: Sequence[Pair], vectors: Callable[[Sequence[str]], Any], *, seed: int = 21
) -> list[list[Query]]:
    """Per chunk, the seeded stream of queries, already matched to the stored texts."""
    ids = answer_ids(pairs)
    out = []
    for number, start in enumerate(range(0, len(pairs), CHUNK)):
        part = pairs[start : start + CHUNK]
        stored, exact, normal, stored_ids = stored_chunk(part, ids)
        asked = [p.text_b for p in part]
        rng = random.Random(seed * 1_000_003 + number)
        stream = [asked[rng.randrange(len(asked))] for _ in range(STREAM)]
        distinct = list(dict.fromkeys(stream))
        sims = vectors(distinct) @ vectors(stored).T
        best = sims.argmax(axis=1)
        matched: dict[str, Query] = {}
        for i, text in enumerate(distinct):
            duplicate = ids[text] in stored_ids
            if text in exact:
                matched[text] = Query("exact", text, 1.0, True, duplicate)
            elif (hit := normal.get(normal_form(text))) is not None:
                matched[text] = Query("normalized", hit, 1.0, ids[hit] == ids[text], duplicate)
            else:
                nearest = stored[int(best[i])]
                similarity = float(np.float32(sims[i, best[i]]))
                correct = ids[nearest] == ids[text]
                matched[text] = Query("semantic", nearest, similarity, correct, duplicate)
        out.append([matched[text] for text in stream])
    return out


def static(name: str, chunks: list[list[Query]], threshold: float) -> Tally:
    tally = Tally(name)
    for chunk in chunks:
        for q in chunk:
            tally.duplicates += q.duplicate
            if q.level != "semantic" or q.similarity >= threshold:
                tally.served += 1
                tally.correct += q.correct
    return tally


def verified(name: str, chunks: list[list[Query]], verifier: Verifier) -> Tally:
    tally = Tally(name)
    for chunk in chunks:
        observations: dict[str, tuple[Observation, ...]] = {}
        for q in chunk:
            tally.duplicates += q.duplicate
            if q.level != "semantic":
                tally.served += 1
                tally.correct += q.correct
                continue
            seen = observations.get(q.entry, ())
            decision = verifier.decide(seen, q.similarity)
            if decision.action == SERVE:
                tally.served += 1
                tally.correct += q.correct
            elif decision.action == VERIFY:  # the oracle answers; the judge compares ids
                tally.verify_calls += 1
                observations[q.entry] = verifier.learn(seen, q.similarity, q.correct)
    return tally


def rows(
    pairs: Sequence[Pair],
    vectors: Callable[[Sequence[str]], Any],
    table: CalibrationTable,
    *,
    seed: int = 21,
) -> list[dict[str, Any]]:
    """The verified rows beside the static ones, on the same streams."""
    chunks = streams(pairs, vectors, seed=seed)
    out = []
    for rate in RATES:
        verifier = Verifier(rate, rng=random.Random(seed + int(rate * 1000)))
        row = verified(f"verified δ={rate:.2f}", chunks, verifier).row()
        row["evidence"] = {k: list(v) for k, v in verifier.evidence().items() if ":" not in k}
        out.append(row)
    for rate in RATES:
        threshold = table.threshold(rate)
        row = static(f"max_wrong={rate:.2f}", chunks, threshold).row()
        row["threshold"] = None if threshold >= 2 else round(threshold, 4)
        out.append(row)
    for cosine in STATIC:
        out.append(static(f"static cosine {cosine:.2f}", chunks, cosine).row())
    return out


def report(result: list[dict[str, Any]]) -> None:
    print(f"verified matching: {STREAM} queries per chunk, drawn with replacement")
    head = f"{'setting':<22}{'served':>8}{'wrong':>7}{'wrong rate':>12}{'recall':>8}"
    print(head + f"{'verify':>8}{'net saved':>11}{'net recall':>12}")
    for r in result:
        print(
            f"{r['name']:<22}{r['served']:>8}{r['wrong']:>7}{r['wrong_rate']:>12.4f}"
            f"{r['recall']:>8.4f}{r['verify_calls']:>8}{r['net_saved']:>11}{r['net_recall']:>12.4f}"
        )
