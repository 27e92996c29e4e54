"""``llm-middleware stats`` over a big generated JSON-lines log: throughput and peak memory.

The log mixes ``cache.result`` events (hits per tier, misses, bypasses), debug events and a
few lines that are not JSON, like a real application log. The command runs in a child
process, once over a small log and once over the big one (1 GiB in a full run); the ratio of
their peak memory shows whether memory stays bounded as the log grows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from .context import Context
from .report import Row, Target

__all__ = ["log_stats"]

SECTION = "stats over a big JSON-lines log"
FULL_BYTES = 1024**3
QUICK_BYTES = 16 * 1024**2
SMALL_BYTES = 4 * 1024**2

# The child reports its own peak: VmHWM belongs to its address space, while ru_maxrss
# would carry over the (large) benchmark process's peak across fork and exec.
CHILD = """
import resource, sys, time
from llm_middleware.cli import main
started = time.perf_counter()
status = main(["stats", sys.argv[1], "--json"])
elapsed = time.perf_counter() - started
try:
    with open("/proc/self/status") as proc:
        peak = next(int(line.split()[1]) for line in proc if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{elapsed} {peak}", file=sys.stderr)
sys.exit(status)
"""


def _chunk() -> bytes:
    """About 1 MiB of log lines, as an application with the JSON set-up writes them."""
    lines: list[dict[str, object]] = []
    outcomes = [("hit", "L1"), ("hit", "L2"), ("miss", None), ("hit", "L3"), ("bypass", None)]
    for i in range(3000):
        outcome, tier = outcomes[i % len(outcomes)]
        common = {"call_id": f"{i:016x}", "fn": f"app.chat{i % 7}", "key": f"llmmw3:~:{i:032x}"}
        lines.append({**common, "event": "cache.policy", "policy": "long", "level": "debug"})
        if outcome == "bypass":
            lines.append({**common, "event": "cache.bypass", "reason": "policy_never"})
        lines.append(
            {
                **common,
                "event": "cache.result",
                "outcome": outcome,
                "tier": tier,
                "policy": ["short", "medium", "long"][i % 3],
                "duration_ms": 0.05 if outcome == "hit" else 812.4,
                "saved_ms": 812.4 if outcome == "hit" else 0.0,
                "saved_tokens": 240 if outcome == "hit" else 0,
                "level": "info",
                "timestamp": "2026-11-30T10:00:00Z",
            }
        )
    text = "\n".join(json.dumps(line) for line in lines) + "\nTraceback: not JSON\n"
    return text.encode()


def _write_log(path: Path, size: int) -> int:
    chunk = _chunk()
    written = 0
    with open(path, "wb") as handle:
        while written < size:
            handle.write(chunk)
            written += len(chunk)
    return written


def _run(path: Path) -> tuple[float, float]:
    """Seconds and peak resident MiB of ``llm-middleware stats`` over ``path``."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    elapsed, peak_kib = done.stderr.split()[-2:]
    json.loads(done.stdout)  # the summary is complete JSON
    return float(elapsed), int(peak_kib) / 1024


def log_stats(ctx: Context) -> list[Row]:
    size = QUICK_BYTES if ctx.quick else FULL_BYTES
    small, big = ctx.workdir / "small.log", ctx.workdir / "big.log"
    _write_log(small, SMALL_BYTES)
    written = _write_log(big, size)
    started = time.perf_counter()
    _, small_peak = _run(small)
    seconds, big_peak = _run(big)
    big.unlink()
    small.unlink()
    mib = written / 1024**2
    ratio = big_peak / small_peak
    label = f"{mib:,.0f} MiB log"
    return [
        Row(SECTION, f"{label}: throughput", round(mib / seconds, 1), "MiB/s"),
        Row(SECTION, f"{label}: wall time", round(seconds, 1), "s"),
        Row(SECTION, f"{SMALL_BYTES // 1024**2} MiB log: peak memory", round(small_peak, 1), "MiB"),
        Row.checked(
            SECTION,
            f"{label}: peak memory",
            round(big_peak, 1),
            ratio,
            "peak at 4 MiB",
            Target("<=", 1.2),
            unit="MiB",
            note=f"bounded: {ratio:.2f}x the small log's peak; whole run "
            f"{time.perf_counter() - started:.0f} s",
        ),
    ]
