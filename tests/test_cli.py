"""The ``llm-middleware`` command: demo, classify, stats, backends, and its errors."""

from __future__ import annotations

import json
import logging
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
    assert "hits saved" in lines[-1] and "promoted from L2 to L1" in lines[-1]


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
