"""Planted entries that are well-formed but hostile: fields out of range, compression bombs.
Either is a miss with ``cache.error`` and its reason, on every hit path, costing no more
than the tier's inflation limit."""

from __future__ import annotations

import json
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.codec import MAX_DECOMPRESSED_BYTES
from llm_middleware.testing import FakeClock

from .support.llm import Counter

PROMPT = "Explain cache poisoning"  # LONG: stored in every tier
MiB = 1024 * 1024


class ItemTier(MemoryBackend):
    """A memory tier with memcached's item limit (1 MiB by default)."""

    def __init__(self, timer: FakeClock, max_value_bytes: int = MiB) -> None:
        super().__init__(maxsize=100, timer=timer)
        self.max_value_bytes = max_value_bytes


class Rig:
    """A decorated function over two tiers, one stored answer, and its key."""

    def __init__(self, clock: FakeClock, tiers: list[Any] | None = None) -> None:
        self.tiers = tiers or [ItemTier(clock), ItemTier(clock)]
        self.cache = MultiLevelCache(self.tiers, timer=clock)
        self.llm = Counter()

        @cache_by_intent(cache=self.cache)
        def chat(prompt: str) -> str:
            return self.llm(prompt)

        self.chat = chat
        with capture_logs() as events:
            chat(PROMPT)
        self.key = str(events[-1]["key"])
        self.valid = json.loads(self.tiers[0].get(self.key))

    def plant(self, data: bytes, tier: int) -> None:
        for backend in self.tiers:
            backend.delete(self.key)
        self.tiers[tier].set(self.key, data, 3600)


def errors(events: list[Any]) -> list[tuple[Any, Any]]:
    return [(e.get("tier"), e.get("reason")) for e in events if e["event"] == "cache.error"]


OUT_OF_RANGE: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "huge_duration": lambda doc: {**doc, "duration_ms": 1e308},
    "negative_duration": lambda doc: {**doc, "duration_ms": -5.0},
    "huge_created": lambda doc: {**doc, "created": 1e300, "expires": 1e301},
    "negative_created": lambda doc: {**doc, "created": -1e300},
    "expires_before_created": lambda doc: {**doc, "expires": doc["created"] - 1},
    "huge_token_count": lambda doc: {**doc, "usage": {"total_tokens": 10**30}},
    "negative_token_count": lambda doc: {**doc, "usage": {"total_tokens": -1}},
    "long_policy": lambda doc: {**doc, "policy": "x" * 10_000},
}


@pytest.mark.parametrize("tier", [0, 1])
@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
def test_an_out_of_range_field_in_a_planted_entry_is_a_miss_on_every_hit_path(
    clock: FakeClock, info_events: list[dict[str, Any]], case: str, tier: int
) -> None:
    """``"duration_ms": 1e308`` in an unsigned, well-formed envelope: with INFO events
    wanted (the short path of a hit) and with debug events wanted (the full lookup),
    a miss with ``cache.error`` reason ``out_of_range`` -- never an exception."""
    rig = Rig(clock)
    planted = json.dumps(OUT_OF_RANGE[case](rig.valid)).encode()
    rig.plant(planted, tier)
    assert rig.chat(PROMPT) == f"answer #2 to {PROMPT}"  # the short path (INFO)
    assert errors(info_events) == [(f"L{tier + 1}", "out_of_range")]
    rig.plant(planted, tier)
    with capture_logs() as events:  # the full lookup (debug events wanted)
        assert rig.chat(PROMPT) == f"answer #3 to {PROMPT}"
    assert errors(events) == [(f"L{tier + 1}", "out_of_range")]


def bomb(inflated: int) -> bytes:
    """A stored entry that inflates to ``inflated`` bytes (a JSON object never closed),
    built a MiB at a time."""
    packer = zlib.compressobj(9)
    parts = [packer.compress(b'{"schema":1,"value":"')]
    chunk = b"a" * MiB
    for _ in range(inflated // MiB):
        parts.append(packer.compress(chunk))
    parts.append(packer.flush())
    return b"z" + b"".join(parts)


def test_a_planted_compression_bomb_costs_no_more_than_the_tiers_limit(
    clock: FakeClock, info_events: list[dict[str, Any]]
) -> None:
    """A few hundred kB that inflate past 256 MiB, in a tier of 1 MiB items: a miss
    (``too_large``) after inflating at most the tier's limit (4 MiB), not 256 MiB
    twice."""
    rig = Rig(clock)
    planted = bomb(MAX_DECOMPRESSED_BYTES + MiB)
    assert len(planted) < MiB
    limit = 4 * MiB  # the default limit of a tier of 1 MiB items
    for tier in (0, 1):
        rig.plant(planted, tier)
        tracemalloc.start()
        try:
            answer = rig.chat(PROMPT)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert answer == f"answer #{rig.llm.calls} to {PROMPT}"
        assert errors(info_events)[-1] == (f"L{tier + 1}", "too_large")
        assert peak < 3 * limit, f"{peak / MiB:.0f} MiB allocated for one call"


def test_the_inflation_limit_is_a_tier_setting_and_stores_respect_it(
    clock: FakeClock, llm: Counter
) -> None:
    """``max_inflated_bytes`` on a backend sets its limit; an honest answer that would
    inflate past it is not stored there (``too_large``), so it is never a miss there
    either, and the other tier keeps it."""
    small, large = MemoryBackend(maxsize=100, timer=clock), MemoryBackend(maxsize=100, timer=clock)
    small.max_inflated_bytes = 64 * 1024  # type: ignore[attr-defined]
    cache = MultiLevelCache([small, large], timer=clock)

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        padding = " lorem ipsum dolor" * 10_000  # 180 kB of JSON, compressed to a few kB
        return llm(prompt) + padding

    with capture_logs() as events:
        chat(PROMPT)
    [bypass] = [e for e in events if e["event"] == "cache.bypass"]
    assert (bypass["reason"], bypass["tier"], bypass["limit"]) == ("too_large", "L1", 64 * 1024)
    for _ in range(3):  # a hit in L2, never promoted to L1: no miss there either
        with capture_logs() as events:
            chat(PROMPT)
        assert llm.calls == 1 and not errors(events)
        [result] = [e for e in events if e["event"] == "cache.result"]
        assert result["tier"] == "L2"


def test_the_default_limit_follows_the_tiers_value_size() -> None:
    """Four times the item size; a tier without one: 32 MiB; never past the hard cap."""
    from llm_middleware.codec import inflate_limit

    assert inflate_limit(MiB) == 4 * MiB
    assert inflate_limit(None) == 32 * MiB
    assert inflate_limit(None, 8 * MiB) == 8 * MiB
    assert inflate_limit(512 * MiB) == MAX_DECOMPRESSED_BYTES
