"""``llm-middleware demo``: a mixed workload through the decorator, offline.

A simulated LLM (a fixed delay per call) answers time-sensitive, reference and
coding prompts, some repeated; each call's decision is printed from its
``cache.result`` event, then a summary of hits, misses and time saved.
"""

from __future__ import annotations

import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from .decorator import cache_by_intent

__all__ = ["run_demo"]

WORKLOAD = (
    "What is a vector database?",
    "Write a Python function that reverses a linked list.",
    "What are the latest AI headlines today?",
    "Summarize the plot of Hamlet in two sentences.",
    "What is a vector database?",
    "Do you know a good name for a cat?",
    "Write a Python function that reverses a linked list.",
    "What are the latest AI headlines today?",
    "Explain how HTTP caching works.",
    "Summarize the plot of Hamlet in two sentences.",
    "Explain how HTTP caching works.",
    "Do you know a good name for a cat?",
    "What is a vector database?",
)


def run_demo(
    *, latency: float = 0.2, json_trace: bool = False, out: TextIO = sys.stdout
) -> dict[str, Any]:
    """Run the workload; returns the decorated function's ``cache_info()``."""
    calls = 0

    @cache_by_intent
    def ask(prompt: str, model: str = "demo-llm") -> str:
        """The simulated LLM: slow, and counts its calls."""
        nonlocal calls
        calls += 1
        time.sleep(latency)
        return f"[{model} answer #{calls}] {prompt}"

    rows: list[MutableMapping[str, Any]] = []

    def collect(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event.get("event") == "cache.result":
            rows.append(event)
        if not json_trace:
            raise structlog.DropEvent
        return event

    renderer: list[Any] = [structlog.processors.TimeStamper(fmt="iso")] if json_trace else []
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            collect,
            *renderer,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(out),
    )
    print(
        f"{'#':>2}  {'prompt':<54} {'policy':<7} {'outcome':<7} {'tier':<5} {'time':>8}", file=out
    )
    started = time.perf_counter()
    for number, prompt in enumerate(WORKLOAD, 1):
        before = len(rows)
        ask(prompt)
        for row in rows[before:]:
            print(
                f"{number:>2}  {prompt[:54]:<54} {row['policy'] or '-':<7} {row['outcome']:<7} "
                f"{row['tier'] or '-':<5} {row['duration_ms']:>6.1f}ms",
                file=out,
            )
    elapsed = time.perf_counter() - started
    info = dict(ask.cache_info())  # type: ignore[attr-defined]
    hits = sum(info["hits"].values())
    print(
        f"\n{len(WORKLOAD)} calls in {elapsed:.2f}s: {hits} hits, {info['misses']} misses, "
        f"{sum(info['bypasses'].values())} bypassed (never cached); the LLM ran {calls} times; "
        f"hits saved {info['saved_ms'] / 1000:.2f}s.",
        file=out,
    )
    return info
