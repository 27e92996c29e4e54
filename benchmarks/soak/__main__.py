"""``python -m benchmarks.soak [--seconds N] [--tiers KIND ...] [--json PATH]``.

Runs the chaos soak (see `benchmarks.soak`) for each shared-tier kind, prints a table, and
exits non-zero when any kind served a wrong or cross-namespace answer, failed a call, or
(signed) served a planted entry.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from . import KINDS, Settings, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument(
        "--seconds",
        type=float,
        default=Settings.seconds,
        help="of traffic; the kinds run at the same time (default 120: under 3 min in all)",
    )
    parser.add_argument("--tiers", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures per kind as JSON")
    parser.add_argument(
        "--unsigned",
        action="store_true",
        help="no secret= on the cache: planted well-formed envelopes are counted, not gated",
    )
    args = parser.parse_args(argv)
    settings = Settings(seconds=args.seconds, seed=args.seed, signed=not args.unsigned)
    figures = run(args.tiers, settings)
    _print(figures)
    if args.json is not None:
        meta = {"python": platform.python_version(), "machine": platform.machine()}
        args.json.write_text(json.dumps({**figures, "settings": {**vars(settings), **meta}}))
    return 1 if any(_bad(f, settings.signed) for f in figures.values()) else 0


def _bad(figures: dict[str, object], signed: bool) -> bool:
    gated = ["wrong", "cross_namespace", "failed"] + (["planted_served"] if signed else [])
    return any(figures[name] for name in gated)


def _print(figures: dict[str, dict[str, object]]) -> None:
    columns = ["calls", "faults", "wrong", "cross_namespace", "failed", "planted"]
    columns += ["planted_served", "slow", "recovery_s", "recovery_max_s"]
    print(f"{'kind':<14}" + "".join(f"{c:>16}" for c in columns))
    for kind, row in figures.items():
        print(f"{kind:<14}" + "".join(f"{row[c]!s:>16}" for c in columns))
        for example in row["examples"]:  # type: ignore[attr-defined]
            print(f"  {example}")


if __name__ == "__main__":
    sys.exit(main())
