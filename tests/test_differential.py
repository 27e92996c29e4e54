"""Differential test: every route that can answer a hit gives the same outcome.

A call can be answered by tier 1 read inline or by the flow's lookup; its decision can
come from the memo or from the steps; its events can go to structlog at INFO or DEBUG,
or to the standard library's logging while structlog is unconfigured; it can be a sync
or an async function, or a method. The same script of calls runs through every
combination and must give equal answers, equal counters, equal ``cache.result``
(and ``cache.error``/``cache.bypass``) fields and equal call ends for the listeners
(``observe()``, OpenTelemetry: the arguments by name among them), but for the call's own
identity and timings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from llm_middleware import (
    MultiLevelCache,
    bypass,
    cache_by_intent,
    configure,
    listeners,
    use_policy,
)
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.policy import CachePolicy
from llm_middleware.testing import FakeClock

from .support.llm import Counter

TRACES = ("info", "debug", "unconfigured")
KINDS = ("function", "async function", "method", "async method")
DECISIONS = ("memo", "steps")
TIER_1 = ("inline", "blocking")

# identity and timing: differ between any two calls, whatever the route
_VARYING = {"call_id", "duration_ms", "saved_ms", "fn", "key"}


class _BlockingMemory(MemoryBackend):
    """A memory tier that does not claim to be in-process: read by the flow only."""

    nonblocking = False


class _StdlibEvents(logging.Handler):
    """The fields of the library's events on the standard library's logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "llm_middleware", None)
        if fields is not None:
            event = record.getMessage().split(" ", 1)[0]
            self.entries.append({"event": event, "log_level": record.levelname.lower(), **fields})


def _capture(trace: str) -> Iterator[list[dict[str, Any]]]:
    if trace == "unconfigured":
        handler = _StdlibEvents()
        logger = logging.getLogger("llm_middleware")
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield handler.entries
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        return
    capture = LogCapture()
    level = logging.INFO if trace == "info" else logging.DEBUG
    structlog.configure(
        processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(level)
    )
    try:
        yield capture.entries
    finally:
        structlog.reset_defaults()


Caller = tuple[Callable[[str], str], Callable[[], Any]]


def _caller(kind: str, cache: MultiLevelCache, llm: Counter) -> Caller:
    """A cached ``ask(prompt)`` of the given kind, answered by ``llm``, wrapped so that
    the script calls it the same way for every kind; and its ``cache_info``."""
    if kind == "function":

        @cache_by_intent(cache=cache)
        def ask(prompt: str) -> str:
            return llm(prompt)

        return ask, ask.cache_info  # type: ignore[attr-defined]
    if kind == "async function":

        @cache_by_intent(cache=cache)
        async def aask(prompt: str) -> str:
            return llm(prompt)

        return lambda prompt: asyncio.run(aask(prompt)), aask.cache_info  # type: ignore[attr-defined]

    class Bot:
        @cache_by_intent(cache=cache)
        def ask(self, prompt: str) -> str:
            return llm(prompt)

        @cache_by_intent(cache=cache)
        async def aask(self, prompt: str) -> str:
            return llm(prompt)

    bot = Bot()
    if kind == "method":
        return bot.ask, Bot.ask.cache_info  # type: ignore[attr-defined]
    return lambda prompt: asyncio.run(bot.aask(prompt)), Bot.aask.cache_info  # type: ignore[attr-defined]


def _run(trace: str, kind: str, decision: str, tier_1: str) -> dict[str, Any]:
    """The script: a miss, hits, a planted invalid entry in tier 1, an expiry of tier 1
    (answered by tier 2, promoted), a NEVER prompt, a bypass block, a forced policy."""
    clock = FakeClock(1_000_000.0)
    top = (MemoryBackend if tier_1 == "inline" else _BlockingMemory)(
        maxsize=100, ttl=300, timer=clock
    )
    cache = MultiLevelCache([top, MemoryBackend(maxsize=1000, ttl=3600, timer=clock)], timer=clock)
    ask, info = _caller(kind, cache, Counter())
    got: list[str] = []

    def call(prompt: str) -> None:
        if decision == "steps":
            configure()  # a new configuration: no decision is remembered
        got.append(ask(prompt))

    capture = _capture(trace)
    events = next(capture)
    ends: list[listeners.CallEnd] = []
    listen = ends.append
    listeners.add(listen)
    try:
        call("Explain HTTP caching")  # miss
        call("Explain HTTP caching")  # hit
        call("Explain HTTP caching")  # hit
        key = next(e["key"] for e in events if e["event"] == "cache.result")
        top.set(key, b"not an envelope", 60)
        call("Explain HTTP caching")  # invalid in L1 (cache.error), hit in L2, promoted
        call("Explain HTTP caching")  # hit
        clock.advance(301)
        call("Explain HTTP caching")  # L1 expired: hit in L2
        call("Explain HTTP caching")  # hit
        call("What is the latest news?")  # NEVER
        with bypass():
            call("Explain HTTP caching")
        with use_policy(CachePolicy.SHORT):
            call("Write a haiku")  # miss
            call("Write a haiku")  # hit
    finally:
        listeners.remove(listen)
        for _ in capture:
            pass
    stats = dict(cache.stats())
    stats.pop("saved_ms")
    function_stats = dict(info())
    function_stats.pop("saved_ms")
    seen = [
        {k: v for k, v in e.items() if k not in _VARYING}
        for e in events
        if e["event"] in ("cache.result", "cache.error", "cache.bypass")
    ]
    for event in seen:
        event.pop("log_level", None)
        event.pop("level", None)
    heard = [(e.outcome, e.tier, e.policy, e.extra, dict(e.arguments or {}), e.value) for e in ends]
    return {
        "answers": got,
        "stats": stats,
        "function": function_stats,
        "events": seen,
        "listeners": heard,
    }


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return _run("info", "function", "memo", "inline")


@pytest.mark.parametrize("tier_1", TIER_1)
@pytest.mark.parametrize("decision", DECISIONS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("trace", TRACES)
def test_every_route_gives_the_same_answers_counters_and_results(
    reference: dict[str, Any], trace: str, kind: str, decision: str, tier_1: str
) -> None:
    """Answers, cache counters and result events match the reference route's."""
    outcome = _run(trace, kind, decision, tier_1)
    assert outcome["answers"] == reference["answers"]
    assert outcome["stats"] == reference["stats"]
    assert outcome["function"] == reference["function"]
    assert outcome["events"] == reference["events"]
    assert outcome["listeners"] == reference["listeners"]


def test_the_reference_script_exercises_every_outcome(reference: dict[str, Any]) -> None:
    """The script is not vacuous: it has misses, hits in both tiers, an error, bypasses."""
    outcomes = [(e["event"], e.get("outcome"), e.get("tier")) for e in reference["events"]]
    assert ("cache.result", "miss", None) in outcomes
    assert ("cache.result", "hit", "L1") in outcomes
    assert ("cache.result", "hit", "L2") in outcomes
    assert ("cache.error", None, "L1") in outcomes
    assert ("cache.result", "bypass", None) in outcomes
    assert reference["stats"]["promotions"] == 2
    assert len(reference["listeners"]) == len(reference["answers"])
    assert reference["listeners"][1][4] == {"prompt": "Explain HTTP caching"}
    assert reference["answers"][:7] == ["answer #1 to Explain HTTP caching"] * 7
