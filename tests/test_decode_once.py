"""An entry is decoded at most once per call, whichever route reads it.

A compressed entry that is not an answer -- invalid, or past its lifetime -- is planted
in tier 1; a call then inflates it once: tier 1's inline read and the flow's lookup
never both decode it. Inflations are counted at ``zlib.decompressobj``, the only way
the codec inflates an entry.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from llm_middleware import MultiLevelCache, cache_by_intent, configure
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.codec import Codec
from llm_middleware.testing import FakeClock

from .support.llm import Counter


class _BlockingMemory(MemoryBackend):
    """A memory tier read by the flow only (not in-process as far as the cache knows)."""

    nonblocking = False


@pytest.fixture
def inflations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times an entry was inflated (one item per ``decompressobj``)."""
    counted: list[int] = []
    real = zlib.decompressobj

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(zlib, "decompressobj", counting)
    return counted


def _planted(kind: str, now: float) -> bytes:
    """A compressed entry that does not answer a call made at ``now``."""
    if kind == "invalid":  # inflates, but to something that is not an envelope
        return b"z" + zlib.compress(b"[" + b"0," * 5000 + b"0]")
    value = {"text": "x" * 10_000}  # JSON data: not remembered by the codec's memo
    data, _ = Codec().encode(value, policy="long", created=now - 7200, ttl=3600, duration_ms=1.0)
    assert data[:1] == b"z"
    return data


def _ask(
    is_async: bool, cache: MultiLevelCache, llm: Counter
) -> tuple[Callable[[str], str], Callable[[], Any]]:
    if is_async:

        @cache_by_intent(cache=cache)
        async def aask(prompt: str) -> str:
            return llm(prompt)

        return lambda p: asyncio.run(aask(p)), aask.cache_info  # type: ignore[attr-defined]

    @cache_by_intent(cache=cache)
    def ask(prompt: str) -> str:
        return llm(prompt)

    return ask, ask.cache_info  # type: ignore[attr-defined]


@pytest.mark.parametrize("planted", ["invalid", "expired"])
@pytest.mark.parametrize("tier_1", ["inline", "blocking"])
@pytest.mark.parametrize("decision", ["memo", "steps"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_planted_entry_is_inflated_once_per_call(
    inflations: list[int],
    clock: FakeClock,
    llm: Counter,
    planted: str,
    tier_1: str,
    decision: str,
    is_async: bool,
) -> None:
    """Each call that finds the planted entry in tier 1 inflates it exactly once."""
    top = (MemoryBackend if tier_1 == "inline" else _BlockingMemory)(
        maxsize=100, ttl=86_400, timer=clock
    )
    cache = MultiLevelCache([top, MemoryBackend(timer=clock)], timer=clock)
    ask, info = _ask(is_async, cache, llm)
    prompt = "Explain HTTP caching"
    with capture_logs() as events:
        ask(prompt)  # a miss: stores, and (route "memo") remembers the decision
    structlog.reset_defaults()  # unconfigured again: no debug events wanted, as in production
    key = next(e["key"] for e in events if e["event"] == "cache.result")
    for round_ in range(3):
        top.set(key, _planted(planted, clock()), 86_400)
        cache.tiers[1].backend.delete(key)
        if decision == "steps":
            configure()  # no remembered decision: the steps decide
        before = len(inflations)
        ask(prompt)
        assert len(inflations) - before == 1, f"round {round_}: inflated more than once"
    assert llm.calls == 4  # each planted entry was a miss
    assert info()["misses"] == 4


class _CountingMemory(MemoryBackend):
    """A memory tier that counts its reads."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reads = 0

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return super().get(key)


@pytest.mark.parametrize("tier_1", ["inline", "blocking"])
@pytest.mark.parametrize("decision", ["memo", "steps"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_call_reads_tier_1_once(
    clock: FakeClock, llm: Counter, tier_1: str, decision: str, is_async: bool
) -> None:
    """A miss, a hit, a miss on a new prompt and a miss on an evicted entry each read
    tier 1 once (with a shared tier 1, a second read would be a second round trip)."""
    kind = type("Tier1", (_CountingMemory,), {"nonblocking": tier_1 == "inline"})
    top = kind(maxsize=100, ttl=86_400, timer=clock)
    cache = MultiLevelCache([top, MemoryBackend(timer=clock)], timer=clock)
    ask, info = _ask(is_async, cache, llm)
    with capture_logs() as events:
        ask("Explain HTTP caching")  # a miss: stores
    structlog.reset_defaults()  # unconfigured again: no debug events wanted, as in production
    key = next(e["key"] for e in events if e["event"] == "cache.result")

    def reads(prompt: str) -> int:
        if decision == "steps":
            configure()  # no remembered decision: the steps decide
        before = top.reads
        ask(prompt)
        return top.reads - before

    assert reads("Explain HTTP caching") == 1  # a hit
    assert reads("Explain DNS caching") == 1  # a miss
    for backend in cache.backends:
        backend.delete(key)
    assert reads("Explain HTTP caching") == 1  # a miss again
    assert info()["misses"] == 3 and llm.calls == 3
