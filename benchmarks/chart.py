"""The standing at a glance: ``python -m benchmarks.run --svg PATH`` draws the memory-hit
figures as one bar chart, every subject's time per hit relative to ``@cache_by_intent``'s.

The bars share a logarithmic axis (the peers span two orders of magnitude) and carry their
ratios as text, so the chart reads without the table. The file is a plain SVG with no
script, style sheet or font to fetch.
"""

from __future__ import annotations

import math
from html import escape

from .report import TIMES, Row

__all__ = ["render_svg"]

WIDTH = 760
LABEL_W = 300
BAR_H = 22
GAP = 10
TOP = 64
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
OURS_COLOR = "#2e7d32"
BASE_COLOR = "#546e7a"
PEER_COLOR = "#c62828"


def _bars(rows: list[Row]) -> list[tuple[str, float, str]]:
    """(label, time relative to the library's sync hit, colour) for the memory section."""
    section = [r for r in rows if r.section.startswith("memory hit (") and r.value is not None]
    mine = next((r for r in section if r.figure == "@cache_by_intent, sync"), None)
    if mine is None or not mine.ratio:
        return []
    bars = [("@cache_by_intent (sync hit)", 1.0, OURS_COLOR)]
    for row in section:
        if row.figure.startswith("baseline"):
            bars.append(("hand-rolled baseline (cachetools)", 1 / mine.ratio, BASE_COLOR))
        elif row.figure.startswith("peer ") and row.ratio is not None and row.target:
            label = row.figure.removeprefix("peer ")
            if "async" in row.vs:  # an async peer is measured against the async hit
                label += " (vs async hit)"
            bars.append((label, row.ratio, PEER_COLOR))
    return bars


def render_svg(rows: list[Row], subtitle: str = "") -> str:
    """The chart as an SVG document (empty of bars when the memory section did not run)."""
    bars = _bars(rows)
    missing = [
        r.figure.removeprefix("peer ")
        for r in rows
        if r.section.startswith("memory hit (") and r.figure.startswith("peer ") and r.value is None
    ]
    height = TOP + len(bars) * (BAR_H + GAP) + 40 + (22 if missing else 0)
    top_ratio = max([b[1] for b in bars] + [10.0])
    decades = math.ceil(math.log10(top_ratio)) + 1  # from 0.1x up
    plot_w = WIDTH - LABEL_W - 70

    def x(ratio: float) -> float:
        return LABEL_W + plot_w * (math.log10(ratio) + 1) / decades

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{escape(FONT)}" font-size="13" '
        'role="img" aria-labelledby="title">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        '<title id="title">Time per memory hit relative to @cache_by_intent</title>',
        '<text x="12" y="24" font-size="16" font-weight="600" fill="#212121">'
        "Time per memory hit, relative to @cache_by_intent (lower is faster)</text>",
        f'<text x="12" y="44" fill="#616161">{escape(subtitle)}</text>',
    ]
    axis_y = TOP + len(bars) * (BAR_H + GAP) + 16
    for power in range(decades + 1):
        ratio = 10.0 ** (power - 1)
        gx = x(ratio)
        parts.append(
            f'<line x1="{gx:.1f}" y1="{TOP - 6}" x2="{gx:.1f}" y2="{axis_y - 14}" '
            'stroke="#e0e0e0"/>'
        )
        parts.append(
            f'<text x="{gx:.1f}" y="{axis_y}" text-anchor="middle" fill="#757575">'
            f"{ratio:g}{TIMES}</text>"
        )
    for i, (label, ratio, color) in enumerate(bars):
        y = TOP + i * (BAR_H + GAP)
        start, end = x(0.1), x(ratio)
        parts.append(
            f'<text x="{LABEL_W - 8}" y="{y + BAR_H * 0.7:.1f}" text-anchor="end" '
            f'fill="#212121">{escape(label)}</text>'
        )
        parts.append(
            f'<rect class="bar" x="{start:.1f}" y="{y}" width="{max(end - start, 1):.1f}" '
            f'height="{BAR_H}" fill="{color}" data-label="{escape(label)}" '
            f'data-ratio="{ratio:.4g}"/>'
        )
        parts.append(
            f'<text x="{end + 6:.1f}" y="{y + BAR_H * 0.7:.1f}" fill="#212121">'
            f"{ratio:.2f}{TIMES}</text>"
        )
    if missing:
        parts.append(
            f'<text x="12" y="{height - 8}" fill="#616161">not measured (not installed or '
            f"failed to set up): {escape(', '.join(missing))}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
