"""``llm-middleware demo``: a mixed workload through the decorator, offline.

A simulated LLM (a fixed delay per call) answers time-sensitive, reference and
coding prompts, some repeated, through the embedded default tiers (L1: 100 items
for up to 5 min, L2: 1,000 items for up to 1 h). Then the demo's clock jumps six
minutes: short-lived answers have expired, and longer-lived ones leave L1 at its
cap, are served from L2 and promoted back. Each call's decision is printed from
its ``cache.result`` event, then a summary of hits, misses and time saved.
Last, when the default embedder is installed, semantic matching: the embedder
used, the threshold of ``max_wrong=0.20``, and the level each prompt matched at.
"""

from __future__ import annotations

import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from .decorator import cache_by_intent
from .registry import load_backend
from .tiers import MultiLevelCache

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

AFTER_SIX_MINUTES = (
    "What is a vector database?",  # LONG: gone from L1 (5 min cap), served by L2
    "Summarize the plot of Hamlet in two sentences.",  # SHORT: expired
    "Write a Python function that reverses a linked list.",  # MEDIUM: from L2
    "What is a vector database?",  # promoted: L1 again
)


class _DemoClock:
    """Wall time, plus whatever the demo fast-forwards."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.time() + self.skipped


def run_demo(
    *, latency: float = 0.2, json_trace: bool = False, out: TextIO = sys.stdout
) -> dict[str, Any]:
    """Run the workload; returns the decorated function's ``cache_info()``."""
    calls = 0
    clock = _DemoClock()
    cache = MultiLevelCache(  # the embedded default tiers, on the demo's clock
        [
            load_backend("memory", maxsize=100, ttl=300, timer=clock),
            load_backend("memory", maxsize=1000, ttl=3600, timer=clock),
        ],
        timer=clock,
    )

    @cache_by_intent(cache=cache)
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
    number = 0
    for prompt in (*WORKLOAD, None, *AFTER_SIX_MINUTES):
        if prompt is None:
            clock.skipped += 360
            print("-- six minutes later --", file=out)
            continue
        number += 1
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
        f"\n{info['calls']} calls in {elapsed:.2f}s: {hits} hits ({_by_tier(info)}), "
        f"{info['misses']} misses, "
        f"{sum(info['bypasses'].values())} bypassed (never cached); the LLM ran {calls} times; "
        f"hits saved {info['saved_ms'] / 1000:.2f}s; {info['promotions']} promoted from L2 to L1.",
        file=out,
    )
    _semantic_demo(clock, latency, rows, out)
    return info


SEMANTIC_WORKLOAD = (
    "Explain how HTTP caching works.",
    "explain how HTTP caching works",  # the normalized level
    "Explain the way HTTP caching works.",  # a paraphrase: the semantic level
    "Explain how DNS caching works.",  # close in words, another question
    "Explain the way HTTP caching works.",  # now an exact hit
)


def _semantic_demo(
    clock: Any, latency: float, rows: list[MutableMapping[str, Any]], out: TextIO
) -> None:
    """Semantic matching with the default embedder, when it is installed."""
    from .errors import ConfigurationError
    from .semantic.match import SemanticMatch

    try:
        semantic = SemanticMatch(max_wrong=0.20)
    except (ConfigurationError, ImportError) as exc:
        print(f"\nsemantic matching: not shown ({exc})", file=out)
        return
    embedder = semantic.embedder
    source = getattr(embedder, "source", "")
    print(
        f"\nsemantic matching with embedder {embedder.name} ({source}); "
        f"max_wrong=0.20 gives threshold {semantic.threshold:.4f}:",
        file=out,
    )
    cache = MultiLevelCache([load_backend("memory", maxsize=100, timer=clock)], timer=clock)

    @cache_by_intent(cache=cache, semantic=semantic)
    def explain(prompt: str) -> str:
        time.sleep(latency)
        return f"[answer] {prompt}"

    for prompt in SEMANTIC_WORKLOAD:
        before = len(rows)
        explain(prompt)
        for row in rows[before:]:
            similarity = f" similarity {row['similarity']:.3f}" if "similarity" in row else ""
            tier = row["tier"] or "-"
            print(f"    {prompt:<42} {row['outcome']:<5} {tier}{similarity}", file=out)


def _by_tier(info: dict[str, Any]) -> str:
    return ", ".join(f"{tier}: {count}" for tier, count in sorted(info["hits"].items()))
