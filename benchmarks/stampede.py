"""Stampede: 50 concurrent identical misses of a function that takes 200 ms, as threads and
as asyncio tasks. Counts the upstream calls and the wall time of the whole burst."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from .context import Context
from .report import Row, Target
from .workloads import ANSWER, MODEL, baseline_cached, memory_cache, ours

__all__ = ["CALLERS", "DELAY_S", "stampede"]

SECTION = "stampede: 50 identical misses, function takes 200 ms"
CALLERS = 50
DELAY_S = 0.2


class _Upstream:
    """A slow function that counts its calls (thread-safe)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.calls += 1

    def sync(self) -> Callable[..., str]:
        def chat(prompt: str, model: str = MODEL) -> str:
            self.count()
            time.sleep(DELAY_S)
            return ANSWER

        return chat

    def asynchronous(self) -> Callable[..., Any]:
        async def achat(prompt: str, model: str = MODEL) -> str:
            self.count()
            await asyncio.sleep(DELAY_S)
            return ANSWER

        return achat


def _burst_threads(fn: Callable[..., Any], prompt: str) -> float:
    """Wall seconds for ``CALLERS`` threads released together to each call ``fn(prompt)``."""
    barrier = threading.Barrier(CALLERS + 1)

    def caller() -> None:
        barrier.wait()
        fn(prompt)

    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


async def _burst_tasks(fn: Callable[..., Any], prompt: str) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(fn(prompt) for _ in range(CALLERS)))
    return time.perf_counter() - start


def _rows(label: str, calls: list[int], walls: list[float], checked: bool) -> list[Row]:
    wall_ms = statistics.median(walls) * 1000
    ratio = wall_ms / (DELAY_S * 1000)
    most = max(calls)
    if not checked:
        return [
            Row(SECTION, f"{label}: upstream calls", most, unit="calls"),
            Row(SECTION, f"{label}: wall time", wall_ms, unit="ms", ratio=ratio, vs="one call"),
        ]
    calls_ok = "pass" if most == 1 else "FAIL"
    return [
        Row(SECTION, f"{label}: upstream calls", most, unit="calls", target="= 1", status=calls_ok),
        Row.checked(
            SECTION, f"{label}: wall time", wall_ms, ratio, "one call", Target("<=", 1.3), unit="ms"
        ),
    ]


def stampede(ctx: Context) -> list[Row]:
    ctx.tracing.filtered()
    rows: list[Row] = []
    # The library, threads.
    calls, walls = [], []
    for i in range(ctx.stampede_rounds):
        upstream = _Upstream()
        fn = ours(memory_cache(), upstream.sync())
        walls.append(_burst_threads(fn, f"Explain stampedes, thread round {i}."))
        calls.append(upstream.calls)
    rows += _rows("@cache_by_intent, threads", calls, walls, checked=True)
    # The library, asyncio tasks.
    calls, walls = [], []
    for i in range(ctx.stampede_rounds):
        upstream = _Upstream()
        afn = ours(memory_cache(), upstream.asynchronous())
        prompt = f"Explain stampedes, task round {i}."
        walls.append(ctx.loop.run_until_complete(_burst_tasks(afn, prompt)))
        calls.append(upstream.calls)
    rows += _rows("@cache_by_intent, asyncio tasks", calls, walls, checked=True)
    # The baseline, threads (for scale: cachetools.cached does not coalesce misses).
    upstream = _Upstream()
    baseline = baseline_cached(upstream.sync())
    wall = _burst_threads(baseline, "Explain stampedes, baseline.")
    rows += _rows("baseline, threads", [upstream.calls], [wall], checked=False)
    return rows
