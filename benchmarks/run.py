"""Run every benchmark and print the figures as a table: ``python -m benchmarks.run``.

Options: ``--quick`` (a fast smoke run: few, short rounds), ``--json PATH`` (write the rows,
the raw samples and the machine description), ``--svg PATH`` (draw the memory-hit ratios
as a chart), ``--only SECTION`` (repeatable), ``--strict`` (exit 1 when a target is not
met). Figures are medians over interleaved rounds and ratios
against a baseline measured in the same run; see docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._timing import Settings, use_cpu_clock
from benchmarks.chart import render_svg
from benchmarks.context import Context
from benchmarks.encryption import encryption
from benchmarks.figures import memory_hit, miss_overhead, size_scaling, tracing
from benchmarks.intent import intent
from benchmarks.logstats import log_stats
from benchmarks.memcached import memcached_hit
from benchmarks.report import Row, print_table, write_json
from benchmarks.stampede import stampede
from benchmarks.telemetry import telemetry
from benchmarks.workloads import Tracing

SECTIONS: dict[str, Callable[[Context], list[Row]]] = {
    "memory": memory_hit,
    "tracing": tracing,
    "memcached": memcached_hit,
    "encryption": encryption,
    "miss": miss_overhead,
    "size": size_scaling,
    "stampede": stampede,
    "telemetry": telemetry,
    "logstats": log_stats,
    "intent": intent,
}

FULL = Settings(rounds=61, round_ms=12.0)
QUICK = Settings(rounds=3, round_ms=2.0, warmup=1)

DISTRIBUTIONS = [
    "llm-middleware",
    "cachetools",
    "structlog",
    "wrapt",
    "pymemcache",
    "dogpile.cache",
    "cashews",
    "aiocache",
    "gptcache",
    "langchain-core",
]


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _memcached_version() -> str | None:
    binary = os.environ.get("MEMCACHED_BIN") or shutil.which("memcached")
    if binary is None:
        return None
    try:
        out = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _meta(settings: Settings, quick: bool) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memcached": _memcached_version(),
        "packages": _versions(),
        "rounds": settings.rounds,
        "round_ms": settings.round_ms,
        "quick": quick,
    }


def _header(meta: dict[str, Any]) -> list[str]:
    installed = ", ".join(f"{k} {v}" for k, v in meta["packages"].items() if v is not None)
    title = "llm_middleware benchmarks"
    if meta["quick"]:
        title += " (--quick: a smoke run, the figures are rough)"
    return [
        title,
        f"{meta['implementation']} {meta['python']} on {meta['platform']}, {meta['cpus']} CPUs; "
        f"memcached: {meta['memcached'] or 'not installed'}",
        f"packages: {installed}",
        f"method: medians of {meta['rounds']} interleaved rounds of ~{meta['round_ms']:g} ms per "
        f"subject, clock {meta['clock']}; ratios against the baseline of the same run",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (rough figures)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        metavar="SECTION",
        help=f"run only these sections: {', '.join(SECTIONS)}",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    parser.add_argument(
        "--svg",
        type=Path,
        metavar="PATH",
        help="also draw the memory-hit ratios (baseline, every peer) as an SVG chart",
    )
    parser.add_argument(
        "--cpu-clock",
        action="store_true",
        help="time in-process subjects by thread CPU time, not wall time (for a machine "
        "shared with other busy processes; memcached and stampede stay on the wall clock)",
    )
    args = parser.parse_args(argv)

    settings = QUICK if args.quick else FULL
    use_cpu_clock(args.cpu_clock)
    workdir = Path(tempfile.mkdtemp(prefix="llmmw-bench-"))
    # Registered first, so it runs last: after the peers' own exit hooks wrote their files.
    atexit.register(shutil.rmtree, workdir, True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    started = time.perf_counter()
    meta = _meta(settings, args.quick)
    meta["clock"] = "thread_time_ns (CPU)" if args.cpu_clock else "perf_counter_ns (wall)"
    with (
        open(workdir / "trace.jsonl", "w", encoding="utf-8") as log_file,
        open(workdir / "trace-fast.jsonl", "wb") as fast_log,
    ):
        ctx = Context(
            settings=settings,
            quick=args.quick,
            loop=loop,
            workdir=workdir,
            tracing=Tracing(log_file, fast_log),
            stampede_rounds=1 if args.quick else 3,
        )
        rows: list[Row] = []
        errors = 0
        for name in args.only or list(SECTIONS):
            print(f"running: {name} ...", file=sys.stderr, flush=True)
            try:
                rows += SECTIONS[name](ctx)
            except Exception as exc:
                errors += 1
                traceback.print_exc()
                rows.append(Row(name, name, status=f"error: {type(exc).__name__}: {exc}"))
        Tracing.unconfigured()
    loop.close()
    meta["duration_s"] = round(time.perf_counter() - started, 1)
    print_table(rows, _header(meta))
    print(f"run time: {meta['duration_s']} s")
    if args.json is not None:
        write_json(args.json, meta, rows, ctx.samples)
        print(f"results written to {args.json}")
    if args.svg is not None:
        subtitle = (
            f"medians of {meta['rounds']} rounds{' (--quick)' if args.quick else ''}"
            f"{', CPU clock' if args.cpu_clock else ''}; {meta['implementation']} "
            f"{meta['python']}, {meta['cpus']} CPUs; log scale"
        )
        args.svg.write_text(render_svg(rows, subtitle), encoding="utf-8")
        print(f"chart written to {args.svg}")
    if errors:
        return 2
    if args.strict and any(r.status == "FAIL" for r in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
