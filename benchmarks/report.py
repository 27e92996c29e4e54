"""Result rows, the printed table and the JSON file."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._timing import Sample

__all__ = ["Row", "Target", "print_table", "sample_row", "write_json"]

TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Target:
    """``ratio <op> limit``, e.g. ``Target("<=", 0.9)``."""

    op: str
    limit: float

    def met(self, ratio: float) -> bool:
        compare: Callable[[float, float], bool] = {"<=": operator.le, ">=": operator.ge}[self.op]
        return compare(ratio, self.limit)

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.limit:.2f}{TIMES}"


@dataclass
class Row:
    """One figure. ``value`` is µs unless ``unit`` says otherwise; ``ratio`` is against
    ``vs``; ``status`` is pass / FAIL (a target), info, skipped: ... or unavailable: ..."""

    section: str
    figure: str
    value: float | None = None
    unit: str = "µs"
    ratio: float | None = None
    vs: str = ""
    target: str = ""
    status: str = "info"
    min_us: float | None = None
    note: str = ""

    @classmethod
    def checked(
        cls,
        section: str,
        figure: str,
        value: float,
        ratio: float,
        vs: str,
        target: Target,
        **extra: Any,
    ) -> Row:
        """A row with a target: its status is pass or FAIL."""
        status = "pass" if target.met(ratio) else "FAIL"
        return cls(
            section, figure, value, ratio=ratio, vs=vs, target=str(target), status=status, **extra
        )


def sample_row(
    section: str,
    figure: str,
    sample: Sample,
    *,
    against: float | None = None,
    vs: str = "",
    target: Target | None = None,
    note: str = "",
) -> Row:
    """A row for a measured sample; ``ratio`` = its median / ``against`` when given."""
    if against is None:
        return Row(section, figure, sample.median_us, min_us=sample.min_us, note=note)
    ratio = sample.median_us / against
    if target is None:
        return Row(
            section, figure, sample.median_us, ratio=ratio, vs=vs, min_us=sample.min_us, note=note
        )
    return Row.checked(
        section, figure, sample.median_us, ratio, vs, target, min_us=sample.min_us, note=note
    )


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "µs":
        return f"{value:,.2f} µs" if value < 1000 else f"{value / 1000:,.2f} ms"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:g} {unit}".strip()


def print_table(rows: list[Row], header: list[str]) -> None:
    """The figures grouped by section: figure, median, min, ratio (of the medians), against
    what, target, status."""
    for text in header:
        print(text)
    cols = ["figure", "median", "min", "ratio", "vs", "target", "status"]
    table = [
        [
            r.figure,
            _value(r.value, r.unit),
            _value(r.min_us, "µs"),
            "-" if r.ratio is None else f"{r.ratio:.2f}{TIMES}",
            r.vs,
            r.target,
            r.status,
        ]
        for r in rows
    ]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    widths[-1] = len(cols[-1])  # the status may be long: never pad it

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if i in (0, 4, 6) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    print()
    print(line(cols))
    print(line(["-" * w for w in widths]))
    section = None
    for row, cells in zip(rows, table, strict=True):
        if row.section != section:
            section = row.section
            print(f"[{section}]")
        print(line(cells))
    checked = [r for r in rows if r.status in ("pass", "FAIL")]
    passed = sum(r.status == "pass" for r in checked)
    print()
    print(f"targets met: {passed} of {len(checked)}")


def write_json(path: Path, meta: dict[str, Any], rows: list[Row], samples: dict[str, Any]) -> None:
    doc = {"meta": meta, "rows": [asdict(r) for r in rows], "samples": samples}
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
