"""``llm-middleware semantic calibrate``: a calibration table from labelled pairs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .calibration import DEFAULT_GRID

__all__ = ["add_semantic_command"]


def _calibrate(args: argparse.Namespace) -> int:
    from .adapters import embedder_by_name
    from .calibration import calibrate, load_pairs
    from .embedder import unit_rows

    pairs = load_pairs(args.pairs)
    if args.limit:
        pairs = pairs[: args.limit]
    embedder = embedder_by_name(args.embedder)
    memo: dict[str, Any] = {}

    def vectors(texts: Any) -> Any:
        import numpy as np

        fresh = [t for t in dict.fromkeys(texts) if t not in memo]
        for start in range(0, len(fresh), 256):
            batch = fresh[start : start + 256]
            for text, row in zip(batch, unit_rows(embedder.embed(batch)), strict=True):
                memo[text] = row
            if sys.stderr.isatty():
                sys.stderr.write(f"\rembedded {len(memo)} texts")
        return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, embedder.dimension))

    grid = tuple(args.max_wrong) if args.max_wrong else DEFAULT_GRID
    table = calibrate(pairs, vectors, embedder.name, grid=grid, source=args.pairs)
    text = json.dumps(table.as_json(), indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        print(f"calibration table written to {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def add_semantic_command(commands: Any) -> None:
    """Register ``semantic calibrate`` on the CLI's subcommands."""
    semantic = commands.add_parser("semantic", help="semantic matching tools")
    tools = semantic.add_subparsers(dest="tool", required=True, parser_class=type(semantic))
    cal = tools.add_parser(
        "calibrate", help="similarity thresholds for error rates, from labelled question pairs"
    )
    cal.add_argument("--pairs", required=True, help='JSON list of {"text_a","text_b","label"}')
    cal.add_argument("--embedder", default="all-MiniLM-L6-v2", help="embedder name")
    cal.add_argument("--out", help="write the table here (default: standard output)")
    cal.add_argument("--limit", type=int, default=0, help="use only the first N pairs")
    cal.add_argument(
        "--max-wrong", type=float, action="append", help="rates to calibrate (repeatable)"
    )
    cal.set_defaults(run=_calibrate)
