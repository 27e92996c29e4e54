"""``llm-middleware stats LOG --html PAGE``: one self-contained page of charts.

The page is plain HTML with inline SVG and inline CSS: no script, no font, no image
and no address to fetch (its content security policy forbids any), so it opens the
same offline, attached to a mail, or years later. Each chart's marks carry their
numbers as ``data-`` attributes, and a ``<title>`` for a tooltip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from html import escape

from .logstats import LogSummary
from .timeline import Bucket

__all__ = ["render_html"]

COLORS = {"hit": "#2a9d8f", "miss": "#e76f51", "bypass": "#8d99ae"}
_OTHER_COLOR = "#b5838d"
_WIDTH, _LABEL, _BAR = 720, 250, 360
_ROW = 26
TOP_FUNCTIONS = 10

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 760px;
       color: #1d2433; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.source { color: #5c6370; margin-top: 0; }
.totals { display: flex; gap: 1em; margin: 1.5em 0; padding: 0; }
.totals div { flex: 1; border: 1px solid #dde1e6; border-radius: 6px; padding: 0.6em; }
.totals dt { color: #5c6370; font-size: 0.85em; }
.totals dd { margin: 0; font-size: 1.5em; font-weight: 600; }
section.chart { margin: 2em 0; }
section.chart h2 { font-size: 1.1em; margin-bottom: 0.4em; }
svg text { font: 12px system-ui, sans-serif; fill: #1d2433; }
svg .axis { stroke: #aab0b8; stroke-width: 1; }
svg .grid { stroke: #e6e8eb; stroke-width: 1; }
.empty { color: #5c6370; font-style: italic; }
.legend span { margin-right: 1em; }
.legend i { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
"""


def _seconds(ms: float) -> str:
    seconds = ms / 1000
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s"


def _number(value: float) -> str:
    return f"{value:,.0f}"


def _short_number(value: float) -> str:
    """A number for an axis, at most seven characters: ``795,879``, ``5.13M``."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if value >= size:
            scaled = value / size
            digits = 0 if scaled >= 100 else 1 if scaled >= 10 else 2
            return f"{scaled:.{digits}f}{suffix}"
    return _number(value)


def _section(chart: str, title: str, body: str) -> str:
    return f'<section class="chart" id="{chart}">\n<h2>{escape(title)}</h2>\n{body}\n</section>'


def _svg(chart: str, height: int, title: str, marks: list[str]) -> str:
    return (
        f'<svg data-chart="{chart}" role="img" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>\n" + "\n".join(marks) + "\n</svg>"
    )


def _empty(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def bar_chart(chart: str, title: str, rows: Sequence[tuple[str, float, str]]) -> str:
    """Horizontal bars, one per ``(label, value, value as text)``."""
    if not rows:
        return _section(chart, title, _empty("no data"))
    top = max(value for _, value, _ in rows) or 1.0
    marks = []
    for number, (label, value, text) in enumerate(rows):
        y = 6 + number * _ROW
        width = max(value / top * _BAR, 1.0 if value else 0.0)
        name = label if len(label) <= 34 else "…" + label[-33:]
        marks.append(
            f'<text x="{_LABEL - 8}" y="{y + 15}" text-anchor="end">{escape(name)}</text>'
            f'<rect class="bar" data-label="{escape(label)}" data-value="{value:g}" '
            f'x="{_LABEL}" y="{y}" width="{width:.1f}" height="{_ROW - 8}" '
            f'fill="{COLORS["hit"]}"><title>{escape(label)}: {escape(text)}</title></rect>'
            f'<text x="{_LABEL + width + 6:.1f}" y="{y + 15}">{escape(text)}</text>'
        )
    return _section(chart, title, _svg(chart, 12 + len(rows) * _ROW, title, marks))


def stacked_chart(chart: str, title: str, rows: Sequence[tuple[str, dict[str, int]]]) -> str:
    """Horizontal bars split by outcome, one per ``(label, {outcome: count})``."""
    if not rows:
        return _section(chart, title, _empty("no data"))
    top = max(sum(counts.values()) for _, counts in rows) or 1
    marks = []
    for number, (label, counts) in enumerate(rows):
        y = 6 + number * _ROW
        x = float(_LABEL)
        marks.append(
            f'<text x="{_LABEL - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
        )
        ordered = [o for o in COLORS if o in counts] + sorted(set(counts) - set(COLORS))
        for outcome in ordered:
            width = counts[outcome] / top * _BAR
            marks.append(
                f'<rect class="segment" data-label="{escape(label)}" '
                f'data-outcome="{escape(outcome)}" data-value="{counts[outcome]}" x="{x:.1f}" '
                f'y="{y}" width="{width:.1f}" height="{_ROW - 8}" '
                f'fill="{COLORS.get(outcome, _OTHER_COLOR)}"><title>{escape(label)}, '
                f"{escape(outcome)}: {counts[outcome]}</title></rect>"
            )
            x += width
        marks.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{sum(counts.values())}</text>')
    seen = {o for _, counts in rows for o in counts}
    outcomes = [o for o in COLORS if o in seen] + sorted(seen - set(COLORS))
    legend = "".join(
        f'<span><i style="background:{COLORS.get(o, _OTHER_COLOR)}"></i>{escape(o)}</span>'
        for o in outcomes
    )
    body = f'<p class="legend">{legend}</p>\n' + _svg(chart, 12 + len(rows) * _ROW, title, marks)
    return _section(chart, title, body)


def _moment(start: float, axis: str | None) -> str:
    if axis == "time":
        return datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"call {int(start) + 1}"


def line_chart(
    chart: str,
    title: str,
    points: Sequence[tuple[float, float | None]],
    axis: str | None,
    top: float,
    label: str,
    tick: Callable[[float], str] | None = None,
) -> str:
    """A line over ``(bucket start, value or None)``; ``None`` breaks the line. ``label``
    formats a value for its tooltip, ``tick`` (else ``label``) for the axis, whose
    labels must fit the chart's left margin."""
    if not points:
        return _section(chart, title, _empty("no calls"))
    height, left, right, up, down = 220, 60, 20, 10, 40
    span_x = _WIDTH - left - right
    span_y = height - up - down
    top = top or 1.0
    step = span_x / max(len(points) - 1, 1)
    marks = [
        f'<line class="grid" x1="{left}" x2="{_WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
        f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(text)}</text>'
        for y, text in (
            (up + span_y * (1 - share), tick(top * share) if tick else label.format(top * share))
            for share in (0, 0.5, 1)
        )
    ]
    path, pen_down = [], False
    for number, (start, value) in enumerate(points):
        if value is None:
            pen_down = False
            continue
        x, y = left + number * step, up + span_y * (1 - value / top)
        path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
        marks.append(
            f'<circle class="point" data-start="{start:g}" data-value="{value:.6g}" '
            f'cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{COLORS["hit"]}">'
            f"<title>{escape(_moment(start, axis))}: {escape(label.format(value))}</title>"
            "</circle>"
        )
    marks.insert(
        3, f'<path d="{" ".join(path)}" fill="none" stroke="{COLORS["hit"]}" stroke-width="2"/>'
    )
    first, last = points[0][0], points[-1][0]
    marks.append(
        f'<line class="axis" x1="{left}" x2="{_WIDTH - right}" y1="{height - down}" '
        f'y2="{height - down}"/>'
        f'<text x="{left}" y="{height - 18}">{escape(_moment(first, axis))}</text>'
        f'<text x="{_WIDTH - right}" y="{height - 18}" text-anchor="end">'
        f"{escape(_moment(last, axis))}</text>"
    )
    return _section(chart, title, _svg(chart, height, title, marks))


def _cumulative_tokens(series: Sequence[tuple[float, Bucket]]) -> list[tuple[float, float]]:
    total, points = 0, []
    for start, bucket in series:
        total += bucket.saved_tokens
        points.append((start, float(total)))
    return points


def render_html(summary: LogSummary, source: str) -> str:
    """The page for ``summary`` of the log named ``source``."""
    data = summary.as_dict()
    series = summary.timeline.series() if summary.timeline is not None else []
    axis = summary.timeline.axis if summary.timeline is not None else None
    totals = [
        ("calls", "calls", _number(data["calls"])),
        ("hit-rate", "hit rate", f"{data['hit_rate']:.1%}"),
        ("saved-time", "time saved", _seconds(data["saved_ms"])),
        ("saved-tokens", "tokens saved", _number(data["saved_tokens"])),
    ]
    cards = "".join(
        f'<div data-total="{key}"><dt>{name}</dt><dd>{value}</dd></div>'
        for key, name, value in totals
    )
    tiers = [(t, float(n), _number(n)) for t, n in sorted(summary.hits_by_tier.items())]
    functions = sorted(summary.saved_ms_by_function.items(), key=lambda item: (-item[1], item[0]))
    saved = [(f, ms, _seconds(ms)) for f, ms in functions[:TOP_FUNCTIONS] if ms > 0]
    policies = [(p, dict(counts)) for p, counts in sorted(summary.outcomes_by_policy.items())]
    charts = [
        line_chart(
            "hit-rate",
            "Hit rate over time",
            [(start, bucket.hit_rate) for start, bucket in series],
            axis,
            1.0,
            "{:.0%}",
        ),
        bar_chart("tiers", "Hits per tier", tiers),
        stacked_chart("policies", "Outcomes per policy", policies),
        bar_chart("functions", f"Top {TOP_FUNCTIONS} functions by time saved", saved),
        line_chart(
            "tokens",
            "Tokens saved (cumulative)",
            _cumulative_tokens(series),
            axis,
            float(data["saved_tokens"]),
            "{:,.0f}",
            _short_number,
        ),
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8">',
            '<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            "<title>llm_middleware cache report</title>",
            f"<style>{_STYLE}</style></head>",
            "<body>",
            "<h1>What the cache saved</h1>",
            f'<p class="source">{escape(source)}: {_number(data["lines"])} lines, '
            f"{_number(data['calls'])} calls</p>",
            f'<dl class="totals">{cards}</dl>',
            *charts,
            "</body></html>",
            "",
        ]
    )
