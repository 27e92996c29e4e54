"""Semantic matching: what each setting serves, and what the lookup costs.

    python -m benchmarks.semantic --pairs PAIRS.json [--embedder NAME] [--max-wrong 0.01]
        [--calibrate CAL.json] [--json OUT.json] [--limit N] [--cache-dir DIR] [--verified]

Quality follows the protocol of ``llm_middleware.semantic.calibration``: chunks of
4,000 pairs, every distinct ``text_a`` stored, every ``text_b`` asked, answers by
connected component of the duplicate pairs, counts pooled over chunks. The rows:
our default (``SemanticMatch()``), ``max_wrong`` 0.01/0.02/0.05/0.10 with the
thresholds of the shipped table (or of ``--calibrate FILE``; never of the
``--pairs`` file itself), and static cosine thresholds 0.80 and 0.90 as peers
document them. Latency: embedding one query alone, then embedding plus search at
1k, 10k and 100k stored entries (synthetic vectors), and what semantic matching
adds to a miss of a decorated function.

``--verified``: verified matching on streams where entries can learn, beside the
static rows on the same streams (see ``benchmarks.semantic_verified``); no latency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llm_middleware.semantic.adapters import embedder_by_name
from llm_middleware.semantic.calibration import (
    CalibrationTable,
    Observations,
    Row,
    calibrate,
    evaluate,
    load_pairs,
    observe,
)
from llm_middleware.semantic.embedder import Embedder, unit_rows
from llm_middleware.semantic.index import Entry, Partition

RATES = (0.01, 0.02, 0.05, 0.10)
STATIC = (0.80, 0.90)


class Vectors:
    """Embeds texts once; optionally kept on disk (``--cache-dir``) between runs."""

    def __init__(self, embedder: Embedder, cache_dir: str | None) -> None:
        self.embedder = embedder
        self.rows: dict[str, Any] = {}
        self.path = None if cache_dir is None else Path(cache_dir)
        if self.path is not None:
            texts_file = self.path / f"{embedder.name}.json"
            if texts_file.exists():
                texts = json.loads(texts_file.read_text(encoding="utf-8"))
                matrix = np.load(self.path / f"{embedder.name}.npy")
                self.rows = dict(zip(texts, matrix, strict=True))

    def __call__(self, texts: Sequence[str]) -> Any:
        fresh = [t for t in dict.fromkeys(texts) if t not in self.rows]
        for start in range(0, len(fresh), 512):
            batch = fresh[start : start + 512]
            for text, row in zip(batch, unit_rows(self.embedder.embed(batch)), strict=True):
                self.rows[text] = row
            print(f"  embedded {start + len(batch)}/{len(fresh)} new texts", file=sys.stderr)
        if fresh:
            self.save()
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.stack([self.rows[t] for t in texts])

    def save(self) -> None:
        if self.path is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        texts = list(self.rows)
        (self.path / f"{self.embedder.name}.json").write_text(json.dumps(texts), encoding="utf-8")
        np.save(self.path / f"{self.embedder.name}.npy", np.stack([self.rows[t] for t in texts]))


def binomial_q95(served: int, rate: float) -> int:
    """The 95th percentile of Binomial(served, rate)."""
    import math

    total, k = 0.0, 0
    log_p, log_q = math.log(rate), math.log1p(-rate)
    whole = math.lgamma(served + 1)
    while k <= served:
        total += math.exp(
            whole - math.lgamma(k + 1) - math.lgamma(served - k + 1) + k * log_p
            + (served - k) * log_q
        )  # fmt: skip
        if total >= 0.95:
            return k
        k += 1
    return served


def quality(
    seen: Observations, table: CalibrationTable, default_rate: float
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(row: Row, threshold: float, rate: float | None) -> None:
        data = row.as_json()
        data["threshold"] = None if threshold >= 2 else round(threshold, 4)
        data["wrong"] = row.served - row.correct
        if rate is not None:
            data["wrong_limit_q95"] = binomial_q95(row.served, rate) if row.served else 0
        rows.append(data)

    threshold = table.threshold(default_rate)
    add(evaluate("default", seen, threshold), threshold, default_rate)
    for rate in RATES:
        threshold = table.threshold(rate)
        add(evaluate(f"max_wrong={rate:.2f}", seen, threshold), threshold, rate)
    for cosine in STATIC:
        add(evaluate(f"static cosine {cosine:.2f}", seen, cosine), cosine, None)
    exact = [level == "exact" for level in seen.level]
    levels = Observations(
        [lv for lv, e in zip(seen.level, exact, strict=True) if e or lv == "normalized"],
        [s for s, lv in zip(seen.similarity, seen.level, strict=True) if lv != "semantic"],
        [c for c, lv in zip(seen.correct, seen.level, strict=True) if lv != "semantic"],
        seen.duplicate,
    )
    add(evaluate("exact+normalized only", levels, 2.0), 2.0, None)
    return rows


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def latency(embedder: Embedder, queries: list[str], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Embedding one query alone vs embedding plus search, per index size."""
    rng = np.random.default_rng(7)
    dimension = embedder.dimension
    embedder.embed(queries[:2])  # load the model first
    embed_times = []
    for text in queries:
        start = time.perf_counter()
        embedder.embed([text])
        embed_times.append(time.perf_counter() - start)
    embed_ms = _median_ms(embed_times)
    rows = []
    for size in sizes:
        centres = unit_rows(rng.standard_normal((max(1, size // 50), dimension)))
        spread = 1 / np.sqrt(dimension)  # clusters of ~50 entries, probes near an entry
        picks = centres[rng.integers(0, len(centres), size)]
        stored = unit_rows(picks + 0.35 * spread * rng.standard_normal((size, dimension)))
        near = stored[rng.integers(0, size, 200)]
        probes = unit_rows(near + 0.25 * spread * rng.standard_normal((200, dimension)))
        part = Partition(dimension, max_entries=size + 1, hnsw_above=20_000)
        for i in range(size):
            part.add(Entry(f"k{i}", f"t{i}", stored[i], float("inf")))
        times, agree = [], 0
        for probe in probes:
            start = time.perf_counter()
            found = part.nearest(probe, 0.0)
            times.append(time.perf_counter() - start)
            best = int(np.argmax(stored @ probe))
            agree += found is not None and found.key == f"k{best}"
        search_ms = _median_ms(times)
        rows.append({
            "stored": size, "index": "hnsw" if size > 20_000 else "brute force",
            "embed_ms": embed_ms, "search_ms": search_ms,
            "added": round(search_ms / embed_ms, 4), "recall_at_1": agree / len(probes),
        })  # fmt: skip
        print(f"  search at {size}: {search_ms} ms", file=sys.stderr)
    return rows


def miss_cost(embedder: Embedder, table: CalibrationTable, queries: list[str]) -> dict[str, Any]:
    """Median time of a decorated function's miss, with and without semantic matching."""
    from llm_middleware import MultiLevelCache, SemanticMatch, cache_by_intent
    from llm_middleware.backends.memory import MemoryBackend

    def run(semantic: Any) -> float:
        cache = MultiLevelCache([MemoryBackend(maxsize=10_000)])

        @cache_by_intent(cache=cache, semantic=semantic)
        def answer(prompt: str) -> str:
            return "stored answer"

        times = []
        for i, text in enumerate(queries):
            start = time.perf_counter()
            answer(f"Explain {text} ({i})")
            times.append(time.perf_counter() - start)
        return _median_ms(times)

    plain = run(False)
    fuzzy = run(SemanticMatch(0.01, embedder=embedder, calibration=table))
    return {"miss_ms": plain, "semantic_miss_ms": fuzzy, "added_ms": round(fuzzy - plain, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.semantic", description=__doc__)
    parser.add_argument("--pairs", required=True, help="labelled pairs (JSON) to evaluate on")
    parser.add_argument("--embedder", default="all-MiniLM-L6-v2")
    parser.add_argument("--max-wrong", type=float, default=0.01, help="the default row's rate")
    parser.add_argument("--calibrate", help="labelled pairs to calibrate on (default: shipped)")
    parser.add_argument("--json", help="write every row here as JSON")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    parser.add_argument("--cache-dir", help="keep the texts' vectors here between runs")
    parser.add_argument("--sizes", default="1000,10000,100000", help="index sizes timed")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument(
        "--verified", action="store_true", help="verified matching on query streams"
    )
    args = parser.parse_args(argv)

    embedder = embedder_by_name(args.embedder)
    vectors = Vectors(embedder, args.cache_dir)
    pairs = load_pairs(args.pairs)[: args.limit or None]
    if args.calibrate:
        if os.path.realpath(args.calibrate) == os.path.realpath(args.pairs):
            parser.error("--calibrate must not be the --pairs file: calibrate on other pairs")
        table = calibrate(load_pairs(args.calibrate), vectors, embedder.name, source=args.calibrate)
    else:
        shipped = CalibrationTable.shipped(embedder.name)
        if shipped is None:
            parser.error(f"no shipped table for {embedder.name}: pass --calibrate FILE")
        table = shipped
    print(f"embedder {embedder.name}; {len(pairs)} pairs; table from {table.source}")
    if args.verified:
        from . import semantic_verified

        verified_rows = semantic_verified.rows(pairs, vectors, table)
        semantic_verified.report(verified_rows)
        if args.json:
            out = {"embedder": embedder.name, "pairs": len(pairs), "mode": "verified",
                   "stream": semantic_verified.STREAM, "rows": verified_rows,
                   "table": table.as_json()}  # fmt: skip
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        return 0
    seen = observe(pairs, vectors)
    rows = quality(seen, table, args.max_wrong)
    header = f"{'setting':<24}{'threshold':>10}{'served':>8}{'wrong':>7}{'q95':>6}"
    print(header + f"{'precision':>11}{'recall':>8}{'wrong rate':>12}")
    for r in rows:
        threshold = "-" if r["threshold"] is None else f"{r['threshold']:.4f}"
        limit = r.get("wrong_limit_q95", "")
        print(
            f"{r['name']:<24}{threshold:>10}{r['served']:>8}{r['wrong']:>7}{limit!s:>6}"
            f"{r['precision']:>11.4f}{r['recall']:>8.4f}{r['wrong_rate']:>12.4f}"
        )
    queries = [p.text_b for p in pairs[: args.latency_queries]]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    timing = latency(embedder, queries, sizes)
    for t in timing:
        print(
            f"search at {t['stored']:>7} ({t['index']}): {t['search_ms']} ms "
            f"= {t['added']:.1%} of embedding ({t['embed_ms']} ms), recall@1 {t['recall_at_1']:.3f}"
        )
    miss = miss_cost(embedder, table, queries[:50])
    print(
        f"a miss: {miss['miss_ms']} ms plain, {miss['semantic_miss_ms']} ms with "
        f"semantic matching (+{miss['added_ms']} ms)"
    )
    if args.json:
        out = {"embedder": embedder.name, "pairs": len(pairs), "rows": rows,
               "latency": timing, "miss": miss, "table": table.as_json()}  # fmt: skip
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
