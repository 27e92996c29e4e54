"""Where a memory hit's time goes: ``python -m benchmarks.breakdown``.

Two views of the ``@cache_by_intent`` memory hit (tracing filtered), each measured with
interleaved rounds like the main run:

* **savings**: the whole hit with one piece made free (patched out or precomputed), against
  the same hit without the patch. The difference is what that piece costs *in context*
  (cache effects included); "rest" is the hit minus all savings: the generator flows and
  their driver, per-call objects, timers.
* **pieces**: each piece timed on its own in a tight loop (warm caches: usually less than
  its cost in context).

This reaches into the library's internals (``_CachedFunction``, the chain's steps, the
flows, ``Trace``), so it follows the code as it is: when the hit path is reshaped, update it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if not __package__:  # run as a script: python benchmarks/breakdown.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _hit_parts as parts
from benchmarks._timing import Settings, Subject, measure, use_cpu_clock
from benchmarks.workloads import Tracing


def _print(
    title: str, rows: list[tuple[str, float, float]], whole: tuple[float, float], unit: str = "µs"
) -> None:
    width = max(len(r[0]) for r in rows)
    if title:
        print(f"\n{title}")
    if unit == "µs":
        print(f"{'':<{width}}  {'median':>9}  {'min':>9}  {'share (min)':>11}")
        for label, median, low in rows:
            print(f"{label:<{width}}  {median:>6.2f} µs  {low:>6.2f} µs  {low / whole[1]:>11.1%}")
        return
    print(f"{'':<{width}}  {'instructions':>12}  {'share':>6}")
    for label, count, _ in rows:
        print(f"{label:<{width}}  {count:>12,.0f}  {count / whole[1]:>6.1%}")


def _savings_rows(
    labels: list[str], cost: Callable[[str], tuple[float, float]]
) -> tuple[list[tuple[str, float, float]], tuple[float, float]]:
    """Rows of the savings table from ``cost(name) -> (median, min)`` per variant name."""
    whole, direct, base = cost("wrapt"), cost("direct"), cost("baseline")
    rows = [
        ("whole hit, through wrapt", *whole),
        ("wrapt (whole - _CachedFunction.call)", whole[0] - direct[0], whole[1] - direct[1]),
    ]
    saved = [0.0, 0.0]
    for label in labels[3:]:
        variant = cost(label)
        piece = (direct[0] - variant[0], direct[1] - variant[1])
        if not label.startswith(" "):
            saved = [saved[0] + piece[0], saved[1] + piece[1]]
        rows.append((label, *piece))
    rest = (direct[0] - saved[0], direct[1] - saved[1])
    rows.append(("rest: flows, driver, per-call objects, timers", *rest))
    rows.append(("(for scale) baseline: cachetools.cached hit", *base))
    return rows, whole


def _instructions(labels: list[str], hits: tuple[int, int]) -> dict[str, float]:
    """Instructions per hit of every variant, counted by valgrind (callgrind): the count of
    a run with ``hits[1]`` hits minus one with ``hits[0]``, over the difference."""
    import concurrent.futures
    import re
    import subprocess

    def count(index: int, n: int) -> int:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.breakdown",
            "--run-variant",
            str(index),
            "--hits",
            str(n),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, check=True)
        found = re.search(r"Collected : (\d+)", out.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count from valgrind: {out.stderr[-500:]}")
        return int(found.group(1))

    jobs = [(i, n) for i in range(len(labels)) for n in hits]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: count(*job), jobs), strict=True))
    return {
        label: (counts[(i, hits[1])] - counts[(i, hits[0])]) / (hits[1] - hits[0])
        for i, label in enumerate(labels)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument(
        "--wall", action="store_true", help="time by the wall clock (default: thread CPU time)"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per hit under valgrind instead of timing (noise-free, slow: "
        "a few minutes)",
    )
    parser.add_argument("--run-variant", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hits", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    use_cpu_clock(not args.wall)
    asyncio.set_event_loop(asyncio.new_event_loop())
    with tempfile.TemporaryFile("w+") as log_file:
        Tracing(log_file).filtered()
        savings, missing = parts.savings()
        if args.run_variant is not None:  # one variant, untimed: for valgrind to count
            subject = savings[args.run_variant][1]
            if subject.setup is not None:
                subject.setup()
            subject.run(args.hits)
            return 0
        labels = [label for label, _ in savings]
        if args.instructions:
            per_hit = _instructions(labels, (50, 300) if args.quick else (200, 1200))
            rows, whole = _savings_rows(labels, lambda name: (per_hit[name], per_hit[name]))
            print("\nsavings in instructions per hit (valgrind callgrind; median = min)")
            _print("", [(n, m, m) for n, m, _ in rows], whole, unit="instr")
            return 0
        # Many short rounds: on a busy machine the least disturbed round (min) is the
        # steadiest estimate of a piece's own cost.
        settings = Settings(rounds=3, round_ms=2.0) if args.quick else Settings(41, 10.0)
        found = measure([s for _, s in savings], settings)
        pieces, missing_pieces = parts.pieces()
        alone = measure([Subject(n, r) for n, r in pieces], settings)
        Tracing.unconfigured()
    rows, whole = _savings_rows(labels, lambda n: (found[n].median_us, found[n].min_us))
    _print("savings: what the hit loses when one piece is made free", rows, whole)
    _print(
        "pieces: each timed alone",
        [(n, alone[n].median_us, alone[n].min_us) for n, _ in pieces],
        whole,
    )
    for line in missing + missing_pieces:
        print(f"not measured (internals changed?): {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
