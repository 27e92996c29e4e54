"""The memory tier passes the backend contract and caps lifetimes at its ``ttl``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.testing import BackendContract, FakeClock


class TestMemoryContract(BackendContract):
    """The shared backend contract, on a fake clock."""

    fake_clock = True

    def make_backend(self, timer: Callable[[], float] | None) -> MemoryBackend:
        assert timer is not None
        return MemoryBackend(maxsize=10_000, ttl=3600, timer=timer)


def test_lifetime_is_capped_by_the_tier(clock: FakeClock) -> None:
    """An entry lives for min(the ttl it was given, the tier's cap)."""
    backend = MemoryBackend(maxsize=10, ttl=300, timer=clock)
    backend.set("long", b"x", 86400)
    backend.set("short", b"y", 60)
    clock.advance(61)
    assert backend.get("short") is None and backend.get("long") == b"x"
    clock.advance(240)
    assert backend.get("long") is None


def test_least_recently_used_entries_are_evicted(clock: FakeClock) -> None:
    """Beyond ``maxsize`` entries the least recently used one goes."""
    backend = MemoryBackend(maxsize=2, timer=clock)
    backend.set("a", b"1", 60)
    backend.set("b", b"2", 60)
    backend.get("a")
    backend.set("c", b"3", 60)
    assert (backend.get("a"), backend.get("b"), backend.get("c")) == (b"1", None, b"3")


@pytest.mark.parametrize("options", [{"maxsize": 0}, {"ttl": 0}, {"ttl": -1}])
def test_bad_options_raise(options: dict[str, float]) -> None:
    """A size below 1 or a non-positive cap is refused."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked via the registry
        MemoryBackend(**options)  # type: ignore[arg-type]


def test_a_full_tier_drops_expired_entries_before_live_ones(clock: FakeClock) -> None:
    """When full, an expired entry makes room before any live one is evicted."""
    backend = MemoryBackend(maxsize=2, timer=clock)
    backend.set("live", b"1", 3600)
    backend.set("short", b"2", 10)  # the most recently used, but soon expired
    clock.advance(60)
    backend.set("new", b"3", 3600)
    assert (backend.get("live"), backend.get("new")) == (b"1", b"3")
    assert len(backend) == 2


def test_entries_rewritten_many_times_still_make_room_by_expiry(clock: FakeClock) -> None:
    """After many rewrites, new entries take the slots of expired ones, not of live ones."""
    backend = MemoryBackend(maxsize=10, timer=clock)
    for round_ in range(100):
        for i in range(10):  # even keys live an hour, odd keys five seconds
            backend.set(f"k{i}", f"{round_}".encode(), 5 if i % 2 else 3600)
        clock.advance(10)
    for i in range(5):
        backend.set(f"new{i}", b"n", 3600)
    assert [backend.get(f"k{i}") for i in range(0, 10, 2)] == [b"99"] * 5
    assert [backend.get(f"new{i}") for i in range(5)] == [b"n"] * 5
