"""The benchmark command runs and prints its table (``--quick``; no timing is checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_run_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
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
