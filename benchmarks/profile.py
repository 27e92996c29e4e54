"""Where a hit's time goes: ``python -m benchmarks.profile``.

Profiles (``cProfile``) many hits of each kind a user makes -- a prompt and a 1 kB
conversation (both answered by a remembered decision), a 64 kB conversation (over the
digest's limit: decided by the steps every time) and a prompt traced as JSON lines at
INFO (the production set-up of docs/trace.md) -- and prints, per kind, the functions
with the most time of their own. Times under a profiler are inflated, and
inflated most for small functions: read the ranking, and measure with ``benchmarks.run``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: python benchmarks/profile.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.workloads import (
    PROMPT,
    Tracing,
    chat_messages,
    conversation,
    memory_cache,
    ours,
)


def _profile(label: str, hit: Callable[[], Any], hits: int, top: int) -> None:
    hit()
    hit()  # stored, then answered by the short path once
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(hits):
        hit()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total: float = getattr(stats, "total_tt")  # noqa: B009 - not in the type stubs
    print(f"\n== {label}: {total / hits * 1e6:.1f} µs per hit under the profiler")
    stats.sort_stats("tottime").print_stats(top)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    print("\n".join(lines[start:]).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--hits", type=int, default=20_000, help="hits per kind (20,000)")
    parser.add_argument("--top", type=int, default=12, help="functions shown per kind (12)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryFile("w+") as text, tempfile.TemporaryFile("w+b") as data:
        tracing = Tracing(text, data)
        try:
            tracing.filtered()
            prompt_fn = ours(memory_cache())
            _profile("prompt, tracing filtered", lambda: prompt_fn(PROMPT), args.hits, args.top)
            messages = conversation(1_000)
            chat_fn = ours(memory_cache(), chat_messages)
            _profile(
                "1 kB conversation, tracing filtered",
                lambda: chat_fn(messages),
                args.hits,
                args.top,
            )
            long_messages = conversation(64_000)  # over the digest's limit: the steps decide
            long_fn = ours(memory_cache(), chat_messages)
            _profile(
                "64 kB conversation, tracing filtered",
                lambda: long_fn(long_messages),
                max(args.hits // 20, 1),
                args.top,
            )
            tracing.fast_info()
            _profile(
                "prompt, JSON lines at INFO (production set-up)",
                lambda: prompt_fn(PROMPT),
                args.hits,
                args.top,
            )
        finally:
            Tracing.unconfigured()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
