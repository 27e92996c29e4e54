"""The ``llm-middleware`` command: demo, classify, stats, backends, and its errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_middleware", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_runs_offline_and_shows_hits() -> None:
    """``demo`` prints a decision per call and a summary with hits and time saved."""
    done = run("demo", "--latency", "0.05")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(" hit " in line and " L1 " in line for line in lines)
    assert any(" bypass " in line and " never " in line for line in lines)
    later = lines[lines.index("-- six minutes later --") :]
    assert any(" long " in line and " hit " in line and " L2 " in line for line in later)
    assert any(" short " in line and " miss " in line for line in later)
    summary = next(line for line in lines if "hits saved" in line)
    assert "promoted from L2 to L1" in summary


def test_classify_shows_policy_ttl_and_rule(tmp_path: Path) -> None:
    """``classify`` prints the policy, lifetime and the rule that matched."""
    done = run("classify", "Explain the CAP theorem")
    assert done.stdout.strip() == "policy: LONG  ttl: 86400s  rule: reference:explain"
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\npolicy = "never"\nwords = ["cap"]\n')
    done = run("classify", "Explain the CAP theorem", "--rules", str(rules))
    assert done.stdout.startswith("policy: NEVER")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("stats", "no/such/file.log"), "cannot read no/such/file.log"),
        (("classify", "x", "--rules", "missing.toml"), "cannot read rules file"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_errors_are_one_clear_line(args: tuple[str, ...], message: str) -> None:
    """Missing files, bad rules files and unknown commands: one line, non-zero exit."""
    done = run(*args)
    assert done.returncode != 0
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr


def test_backends_lists_registered_names() -> None:
    """``backends`` names each registered backend and whether it loads."""
    done = run("backends")
    memory = next(line for line in done.stdout.splitlines() if line.startswith("memory "))
    assert "llm_middleware.backends.memory:MemoryBackend" in memory and memory.endswith("ok")


def test_stats_of_a_json_log_match_the_in_process_stats(
    tmp_path: Path, cache: MultiLevelCache, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mixed workload logged as JSON lines gives the same counts to ``stats``."""
    log = tmp_path / "cache.log"
    with log.open("w") as handle:
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.WriteLoggerFactory(handle),
        )
        try:
            chat = cache_by_intent(cache=cache)(lambda prompt: f"re: {prompt}")
            for prompt in ["Explain a", "Explain a", "today?", "Write b", "Write b", "hi"] * 3:
                chat(prompt)
            handle.write("a line that is not JSON\n")
        finally:
            structlog.reset_defaults()
    assert main(["stats", str(log), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    stats = cache.stats()
    assert summary["hits"] == sum(stats["hits"].values())
    assert summary["misses"] == stats["misses"]
    assert summary["bypasses"] == sum(stats["bypasses"].values())
    assert summary["hits_by_tier"] == stats["hits"]
    assert summary["skipped_lines"] == 1
    assert summary["top_bypass_reasons"] == {"policy_never": 3}


def test_stats_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal, a long ``stats`` run draws a progress bar on stderr; piped, it does not."""
    import os
    import pty

    log = tmp_path / "big.log"
    log.write_bytes(b"not json\n" * 200_000)
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "llm_middleware", "stats", str(log)],
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=60,
            check=True,
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert b"[" in drawn and b"%" in drawn and b"#" in drawn
    assert b"lines read: 200000" in done.stdout
    piped = run("stats", str(log))
    assert piped.stderr == ""


def test_version_is_the_installed_distributions() -> None:
    """``--version`` prints the version pip knows, which is ``llm_middleware.__version__``."""
    import importlib.metadata

    import llm_middleware

    done = run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"llm-middleware {importlib.metadata.version('llm-middleware')}"
    assert llm_middleware.__version__ == importlib.metadata.version("llm-middleware")


PLUGIN_METADATA = """Metadata-Version: 2.1
Name: example-vector-store
Version: 1.0
Provides-Extra: vectors
Requires-Dist: not-installed-vectors>=1; extra == "vectors"
"""


def test_backends_table_aligns_and_names_the_extra_for_a_missing_module(tmp_path: Path) -> None:
    """Columns line up past long names; a missing module names the extra that installs it."""
    (tmp_path / "vector_plugin.py").write_text("import not_installed_vectors\n")
    info = tmp_path / "example_vector_store-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(PLUGIN_METADATA)
    (info / "entry_points.txt").write_text(
        "[llm_middleware.backends]\nvectors+very-long-scheme = vector_plugin:VectorBackend\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "llm_middleware", "backends"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines}
    assert {"memory", "redis+cluster", "vectors+very-long-scheme"} <= set(rows)
    # every column starts at the same offset on every line
    for column in ("llm_middleware.backends.memory:MemoryBackend", "llm-middleware  ", "ok"):
        assert column in rows["memory"]
    starts = {
        line.index("llm_middleware.backends.")
        for line in lines
        if line.split()[0] != "vectors+very-long-scheme" and "llm_middleware.backends." in line
    }
    assert len(starts) == 1
    header = lines[0]
    for name, row in rows.items():
        if name == "name":
            continue
        assert row.index(row.split()[1]) == header.index("entry point"), row
        assert row.index(row.split()[2]) == header.index("package"), row
        assert row.index(row.split()[3]) == header.index("status"), row
    assert rows["vectors+very-long-scheme"].endswith(
        "fails to load: No module named 'not_installed_vectors'"
        ' (pip install "example-vector-store[vectors]")'
    )


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (("--version",), 0),  # argparse drops a message it cannot write, then exits 0
        (("backends",), 141),
        (("demo", "--latency", "0"), 141),
        (("classify", "What is DNS?"), 141),
    ],
)
def test_a_reader_that_stops_early_gets_no_traceback(args: tuple[str, ...], status: int) -> None:
    """Like ``llm-middleware ... | head -1``: the pipe closes first; the command ends quietly."""
    reader, writer = os.pipe()
    os.close(reader)  # closed before the interpreter has even started: every write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "llm_middleware", *args],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.stderr == ""
    assert done.returncode == status


def test_stats_skips_a_result_line_with_a_field_of_the_wrong_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``cache.result`` line whose field has the wrong type (``"saved_ms": "12ms"``) is
    skipped and counted, not a traceback; the good lines around it are summed."""
    good = {"event": "cache.result", "outcome": "hit", "tier": "L1", "policy": "short",
            "fn": "app.chat", "saved_ms": 12.5, "saved_tokens": 30}  # fmt: skip
    bad = [
        {**good, "saved_ms": "12ms"},
        {**good, "saved_tokens": "30"},
        {**good, "saved_tokens": 1.5},
        {**good, "saved_ms": -1},
        {**good, "outcome": ["hit"]},
        {**good, "tier": {"L1": 1}},
    ]
    log = tmp_path / "cache.log"
    lines = [json.dumps(good), *map(json.dumps, bad), '{"event": "cache.result", "saved_ms": NaN}']
    log.write_text("\n".join([*lines, json.dumps(good)]) + "\n")
    assert main(["stats", str(log), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["hits"] == 2 and summary["calls"] == 2
    assert summary["saved_ms"] == 25.0 and summary["saved_tokens"] == 60
    assert summary["skipped_lines"] == len(bad) + 1


def _labelled(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.json"
    path.write_text(
        json.dumps(
            [
                {"question": "What is the price of gold right now?", "fact_type": "fast-changing"},
                {"question": "Explain the latest release notes", "fact_type": "fast-changing"},
                {"question": "Who is the CEO of Apple?", "fact_type": "slow-changing"},
                {"question": "What is a monad?", "fact_type": "never-changing"},
                {"question": "What happened today in 1066?", "fact_type": "never-changing"},
                {"question": "Who wrote Hamlet?", "fact_type": "never-changing", "extra": 1},
            ]
        ),
        encoding="utf-8",
    )
    return path


def test_classify_eval_prints_the_matrix_and_rates(tmp_path: Path) -> None:
    """``classify --eval`` counts policies per fact type and prints the three rates."""
    done = run("classify", "--eval", str(_labelled(tmp_path)), "--errors")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line}
    assert rows["fast-changing"] == ["2", "0", "0", "0", "2"]  # NEVER SHORT MEDIUM LONG total
    assert rows["never-changing"] == ["1", "1", "0", "1", "3"]
    assert "stale risk    0 of 2 (0.0%)" in done.stdout
    assert "fast -> NEVER 2 of 2 (100.0%)" in done.stdout
    assert "wasted        1 of 3 (33.3%)" in done.stdout
    assert "What happened today in 1066?" in done.stdout  # --errors lists the miss


def test_classify_eval_json_with_a_rules_file(tmp_path: Path) -> None:
    """``--json`` gives the figures as data; ``--rules`` evaluates other rules."""
    rules = tmp_path / "rules.toml"
    rules.write_text('default = "long"\n[[rule]]\npolicy = "short"\nwords = ["ceo"]\n')
    done = run("classify", "--eval", str(_labelled(tmp_path)), "--rules", str(rules), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["stale_risk"] == {"count": 2, "total": 2, "fraction": 1.0}
    assert doc["fast_never"]["count"] == 0 and doc["wasted"]["count"] == 0
    assert doc["matrix"]["slow-changing"] == {"never": 0, "short": 1, "medium": 0, "long": 0}
    assert {e["kind"] for e in doc["errors"]} == {"stale"}


def test_classify_prompt_as_json() -> None:
    """One prompt's verdict as JSON."""
    done = run("classify", "Is Gmail down?", "--json")
    assert json.loads(done.stdout) == {"policy": "never", "ttl": 0, "rule": "outages:is gmail down"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "is not JSON"),
        ('{"question": "x"}', "must hold a JSON list"),
        ('[{"question": "x", "fact_type": "sometimes"}]', "entry 0 needs"),
    ],
)
def test_classify_eval_refuses_bad_files(tmp_path: Path, content: str, message: str) -> None:
    """A malformed labelled file: one line on stderr, exit status 1."""
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    done = run("classify", "--eval", str(path))
    assert done.returncode == 1 and message in done.stderr, done.stderr
    both = run("classify", "x", "--eval", str(path))
    assert both.returncode == 1 and "one of them" in both.stderr
