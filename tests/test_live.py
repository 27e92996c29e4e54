"""``tail -f app.log | llm-middleware stats - --every N``: refreshed while the input is open,
a last summary when it ends. The input is a pipe the test writes to; the test waits for
output, never for time."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from llm_middleware.live import follow
from llm_middleware.logstats import LogSummary


def _result(outcome: str) -> str:
    event = {"event": "cache.result", "outcome": outcome, "fn": "app.chat", "policy": "long"}
    if outcome == "hit":
        event.update(tier="L1", saved_ms=250.0, saved_tokens=12)
    return json.dumps(event) + "\n"


class _Output:
    """The lines a child process prints, read by a thread so that waiting is bounded."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stream = process.stdout

        def read() -> None:
            for line in stream:
                self.lines.put(line.rstrip("\n"))
            self.lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, wanted: Callable[[str], bool]) -> str:
        while True:
            line = self.lines.get(timeout=60)
            assert line is not None, f"output ended before the line wanted: {self.seen}"
            self.seen.append(line)
            if wanted(line):
                return line


def test_summary_refreshes_while_the_pipe_stays_open() -> None:
    """Lines written to an open pipe show up in a refreshed summary without the input
    ending; closing the input prints the final summary and exits 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_middleware", "stats", "-", "--every", "0.05"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    output = _Output(process)
    assert process.stdin is not None
    try:
        process.stdin.write(_result("hit") + _result("hit") + _result("miss"))
        process.stdin.flush()
        line = output.wait_for(lambda text: text.startswith("calls: 3 "))
        assert "hits: 2" in line and "hit rate: 66.7%" in line
        process.stdin.write("not JSON\n" + _result("miss") + _result("bypass"))
        process.stdin.flush()
        output.wait_for(lambda text: text.startswith("calls: 5 "))
        process.stdin.close()
        output.wait_for(lambda text: text.startswith("-- final at "))
        final = output.wait_for(lambda text: text.startswith("calls: "))
        assert final.startswith("calls: 5  hits: 2  misses: 2  bypassed: 1")
        assert output.wait_for(lambda text: text.startswith("lines read:")) == (
            "lines read: 6 (1 other lines skipped)"
        )
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class _SteppedClock:
    """A clock that moves ``step`` seconds each time the summary reads it."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_follow_refreshes_on_its_clock_and_ends_with_the_input() -> None:
    """With a clock that runs 4 s per reading, ``every=10`` refreshes every third
    reading; the end of the input gives one last, complete summary."""
    shown: list[tuple[int, bool]] = []

    def show(summary: LogSummary, final: bool) -> None:
        shown.append((summary.events, final))

    lines = [_result("hit")] * 7
    summary = follow(lines, 10, show, clock=_SteppedClock(4.0))
    assert summary.events == 7 and summary.outcomes["hit"] == 7
    assert shown[-1] == (7, True)
    refreshes = [count for count, final in shown if not final]
    assert refreshes and refreshes == sorted(refreshes)
    with pytest.raises(ValueError, match="positive"):
        follow([], 0, show)
