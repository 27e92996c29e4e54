"""The benchmark command runs and prints its table (``--quick``; no timing is checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_run_prints_the_table(tmp_path: Path) -> None:
    out, chart = tmp_path / "results.json", tmp_path / "chart.svg"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--json",
            str(out),
            "--svg",
            str(chart),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for heading in (
        "[memory hit (tracing filtered)]",
        "[memory hit by trace setting]",
        "[memcached hit (tracing filtered)]",
        "[miss overhead (beyond the function's own time)]",
        "[hit cost by conversation size]",
        "[stampede: 50 identical misses, function takes 200 ms]",
    ):
        assert heading in text, text
    assert "figure" in text and "target" in text and "status" in text
    assert "targets met:" in text
    for peer in ("dogpile.cache", "cashews", "aiocache", "GPTCache", "LangChain"):
        assert f"peer {peer}" in text, text  # measured, or reported unavailable
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["meta"]["quick"] is True
    assert {row["section"] for row in doc["rows"]} >= {"memory hit (tracing filtered)"}
    assert all(not row["status"].startswith("error") for row in doc["rows"])
    _check_chart(chart, doc["rows"])


def _check_chart(chart: Path, rows: list[dict[str, Any]]) -> None:
    """The SVG has a bar for the library, the baseline and each measured peer, with the
    ratios of the run's rows, and names the peers it could not measure; it fetches nothing."""
    svg = ElementTree.parse(chart).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    bars = {
        bar.get("data-label"): float(bar.get("data-ratio", "nan"))
        for bar in svg.iter(f"{ns}rect")
        if bar.get("class") == "bar"
    }
    memory = {r["figure"]: r for r in rows if r["section"] == "memory hit (tracing filtered)"}
    ours = memory["@cache_by_intent, sync"]["ratio"]
    assert bars.pop("@cache_by_intent (sync hit)") == 1.0
    assert bars.pop("hand-rolled baseline (cachetools)") == pytest.approx(1 / ours, rel=1e-3)
    text = " ".join("".join(t.itertext()) for t in svg.iter(f"{ns}text"))
    for figure, row in memory.items():
        if not figure.startswith("peer ") or (row["value"] is not None and not row["target"]):
            continue  # the bare LangChain lookup is shown for scale in the table only
        name = figure.removeprefix("peer ")
        if row["value"] is None:
            assert name in text.split("not measured", 1)[1], name
        else:
            drawn = next(ratio for label, ratio in bars.items() if label.startswith(name))
            assert drawn == pytest.approx(row["ratio"], rel=1e-3), name
    raw = chart.read_text(encoding="utf-8")
    assert "href" not in raw and "<script" not in raw and "@import" not in raw


def test_profile_prints_each_kind_of_hit() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.profile", "--hits", "40", "--top", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kinds = [line for line in proc.stdout.splitlines() if line.startswith("== ")]
    assert [k.split(":")[0] for k in kinds] == [
        "== prompt, tracing filtered",
        "== 1 kB conversation, tracing filtered",
        "== 64 kB conversation, tracing filtered",
        "== prompt, JSON lines at INFO (production set-up)",
    ]
    assert proc.stdout.count("ncalls") == 4
