"""``llm-middleware stats LOG --html PAGE``: the page opened in headless Chromium.

A workload runs through the cache with structlog writing JSON lines (timestamps from a
fake clock that spans an hour); the page made from that log is loaded by Debian's
``chromium``, whose DOM must hold each chart with the numbers the cache itself counted,
and whose screenshot must show them. Without ``chromium`` the browser test is skipped
(a failure under ``CI=true``; ``./scripts/test`` installs it).
"""

from __future__ import annotations

import json
import logging
import random
import struct
import subprocess
import sys
import zlib
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import structlog

pytest.importorskip("openai")
from openai.types.chat import ChatCompletion

import llm_middleware.openai  # noqa: F401 - stores ChatCompletion answers with their usage
from llm_middleware import MultiLevelCache, cache_by_intent, cache_info
from llm_middleware.logstats import summarize
from llm_middleware.testing import FakeClock
from llm_middleware.timeline import MAX_BUCKETS, parse_timestamp
from tests.support.chromium_cdp import FLAGS, chromium_path

CHARTS = {"hit-rate", "tiers", "policies", "functions", "tokens"}
PROMPTS = [
    "Explain the CAP theorem",  # reference: long
    "Explain B-trees",
    "Write a function that merges intervals",  # code: medium
    "hello there",  # anything else: short
    "What is the weather today?",  # time-sensitive: never cached
]


def _completion(prompt: str) -> ChatCompletion:
    tokens = 40 + len(prompt)
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-test",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"re: {prompt}"},
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": tokens - 10,
                "total_tokens": tokens,
            },
        }
    )


def write_workload_log(path: Path, cache: MultiLevelCache, clock: FakeClock) -> list[Any]:
    """An hour of calls to three functions, logged as JSON lines; returns the functions."""

    def stamp(_: object, __: str, event: dict[str, Any]) -> dict[str, Any]:
        event["timestamp"] = clock()
        return event

    def support(prompt: str) -> ChatCompletion:
        return _completion(prompt)

    def docs(prompt: str) -> ChatCompletion:
        return _completion(prompt)

    def review(prompt: str) -> ChatCompletion:
        return _completion(prompt)

    functions = [cache_by_intent(cache=cache)(f) for f in (support, docs, review)]
    pick = random.Random(23)
    with path.open("w") as handle:
        structlog.configure(
            processors=[
                stamp,
                structlog.processors.add_log_level,
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.WriteLoggerFactory(handle),
        )
        try:
            for _ in range(240):
                clock.advance(15)
                pick.choice(functions)(pick.choice(PROMPTS))
            handle.write("Traceback (most recent call last): a line that is not JSON\n")
        finally:
            structlog.reset_defaults()
    return functions


class _Marks(HTMLParser):
    """The charts of a page as the browser serialized its DOM: per chart, its marks'
    ``data-`` attributes; and the totals cards."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.totals: dict[str, str] = {}
        self.resources: list[str] = []
        self._chart: str | None = None
        self._total: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        self.resources += [found[a] for a in ("src", "href") if a in found]
        if tag == "svg":
            self._chart = found.get("data-chart")
        elif self._chart is not None and "data-value" in found:
            self.charts[self._chart].append({**found, "tag": tag})
        if "data-total" in found:
            self._total = found["data-total"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._total is not None and self.lasttag == "dd":
            self.totals[self._total] = data.strip()
            self._total = None


def _chromium() -> str:
    found = chromium_path()
    if found is None:
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    return found


def _browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=profile.parent,
    )


def _png_rows(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the (filtered) scanlines of an 8-bit RGB(A) PNG."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, color = struct.unpack(">IIBB", png[16:26])
    assert depth == 8 and color in (2, 6)
    data, at = b"", 8
    while at < len(png):
        (size,) = struct.unpack(">I", png[at : at + 4])
        if png[at + 4 : at + 8] == b"IDAT":
            data += png[at + 8 : at + 8 + size]
        at += 12 + size
    raw = zlib.decompress(data)
    stride = 1 + width * (3 if color == 2 else 4)
    return width, height, [raw[i : i + stride] for i in range(0, len(raw), stride)]


def test_report_page_in_headless_chromium(tmp_path: Path, cache: MultiLevelCache) -> None:
    """The page's charts reach the browser's DOM with the cache's own counts, render
    to a screenshot that is not blank, and the page loads nothing from anywhere."""
    _chromium()
    clock: FakeClock = cache.timer  # type: ignore[assignment]
    log, page = tmp_path / "app.log", tmp_path / "report.html"
    functions = write_workload_log(log, cache, clock)
    done = subprocess.run(
        [sys.executable, "-m", "llm_middleware", "stats", str(log), "--html", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"report written to {page}" in done.stderr

    profile = tmp_path / "profile"
    dom = _browse(page, profile, "--dump-dom").stdout
    marks = _Marks()
    marks.feed(dom)
    assert set(marks.charts) == CHARTS
    assert marks.resources == []  # no script, style sheet, image or font to fetch
    assert "default-src 'none'" in page.read_text()

    stats = cache.stats()
    tiers = {m["data-label"]: int(m["data-value"]) for m in marks.charts["tiers"]}
    assert tiers == stats["hits"]
    per_policy: dict[str, int] = defaultdict(int)
    for mark in marks.charts["policies"]:
        per_policy[mark["data-outcome"]] += int(mark["data-value"])
    assert per_policy["hit"] == sum(stats["hits"].values())
    assert per_policy["miss"] == stats["misses"]
    assert per_policy["bypass"] == sum(stats["bypasses"].values())
    assert marks.totals["calls"] == f"{stats['calls']:,}"
    assert marks.totals["saved-tokens"] == f"{stats['saved_tokens']:,}"

    saved = {m["data-label"]: float(m["data-value"]) for m in marks.charts["functions"]}
    for function in functions:
        info = cache_info(function)
        name = f"{function.__module__}.{function.__qualname__}"
        assert saved[name] == pytest.approx(info["saved_ms"], abs=0.001 * info["calls"])
    ranked = [float(m["data-value"]) for m in marks.charts["functions"]]
    assert ranked == sorted(ranked, reverse=True)

    rates = [float(m["data-value"]) for m in marks.charts["hit-rate"]]
    assert 2 <= len(rates) <= MAX_BUCKETS and all(0.0 <= r <= 1.0 for r in rates)
    tokens = [float(m["data-value"]) for m in marks.charts["tokens"]]
    assert tokens == sorted(tokens) and tokens[-1] == stats["saved_tokens"] > 0

    shot = tmp_path / "report.png"
    _browse(page, profile, "--window-size=800,1500", f"--screenshot={shot}")
    width, height, rows = _png_rows(shot.read_bytes())
    assert (width, height) == (800, 1500)
    assert len(set(rows)) > height // 4  # charts drawn, not a blank page


def test_timeline_reads_unix_and_iso_timestamps() -> None:
    """Unix times and ISO 8601 (with Z, an offset, or no zone: UTC) give the same instant."""
    instant = 1_764_600_000.5
    for text in ("2025-12-01T14:40:00.5Z", "2025-12-01T15:40:00.5+01:00", "2025-12-01T14:40:00.5"):
        assert parse_timestamp(text) == instant
    assert parse_timestamp(instant) == parse_timestamp(str(instant)) == instant
    assert parse_timestamp("yesterday") is None and parse_timestamp(None) is None


def _result_line(outcome: str, when: Any = None) -> str:
    event = {"event": "cache.result", "outcome": outcome, "fn": "f", "policy": "long"}
    if outcome == "hit":
        event.update(tier="L1", saved_ms=100.0, saved_tokens=7)
    if when is not None:
        event["timestamp"] = when
    return json.dumps(event)


def test_timeline_stays_bounded_over_a_long_span() -> None:
    """Three years of calls, one an hour, fit in at most MAX_BUCKETS buckets that
    together count every call."""
    start = 1_700_000_000.0
    lines = (
        _result_line("hit" if n % 4 else "miss", start + 3600 * n) for n in range(3 * 365 * 24)
    )
    summary = summarize(lines, timeline=True)
    assert summary.timeline is not None and summary.timeline.axis == "time"
    series = summary.timeline.series()
    assert len(series) <= MAX_BUCKETS
    assert sum(b.hits + b.misses for _, b in series) == summary.events
    assert sum(b.saved_tokens for _, b in series) == summary.saved_tokens
    assert series[0][0] <= start and series[-1][0] <= start + 3 * 365 * 86400


def test_without_timestamps_the_axis_is_the_calls() -> None:
    """A log without timestamps is charted by call number: early misses, later hits."""
    lines = [_result_line("miss")] * 50 + [_result_line("hit")] * 150
    summary = summarize(lines, timeline=True)
    assert summary.timeline is not None and summary.timeline.axis == "calls"
    rates = [b.hit_rate for _, b in summary.timeline.series()]
    assert rates[0] == 0.0 and rates[-1] == 1.0


# Every text of the page's charts: the part of it drawn outside its chart's box.
_CLIPPED_TEXTS = """
[...document.querySelectorAll('svg[data-chart]')].flatMap(svg => {
  const width = svg.viewBox.baseVal.width;
  return [...svg.querySelectorAll('text')].map(text => {
    const box = text.getBBox();
    return {chart: svg.dataset.chart, text: text.textContent,
            left: box.x, right: box.x + box.width, width};
  }).filter(t => t.left < 0 || t.right > t.width);
})
"""


def test_report_texts_fit_their_charts_with_big_numbers(tmp_path: Path) -> None:
    """Millions of tokens saved and a long function name: every axis label and value
    is drawn inside its chart, as the browser lays it out."""
    from llm_middleware.report import render_html
    from tests.support.chromium_cdp import Browser

    binary = _chromium()
    start = 1_764_600_000.0
    lines = []
    for n in range(400):
        event = json.loads(_result_line("hit" if n % 3 else "miss", start + 60 * n))
        if event["outcome"] == "hit":
            event.update(saved_tokens=45_678, saved_ms=3_600_000.0)
        event["fn"] = "company.product.service.handlers.answer_support_question"
        lines.append(json.dumps(event))
    summary = summarize(lines, timeline=True)
    assert summary.saved_tokens > 10_000_000
    page = tmp_path / "report.html"
    page.write_text(render_html(summary, "app.log"))

    browser = Browser(binary, tmp_path / "profile")
    try:
        browser.page("Page.enable")
        start_events = len(browser.events)
        browser.page("Page.navigate", url=page.as_uri())
        browser.wait_for_event("Page.loadEventFired", start_events)
        assert browser.evaluate("document.querySelectorAll('svg[data-chart] text').length") > 10
        assert browser.evaluate(_CLIPPED_TEXTS) == []
    finally:
        browser.close()
