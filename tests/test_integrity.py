"""Signed entries and fail-closed namespaces: a shared tier cannot be trusted blindly."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from llm_middleware import ConfigurationError, MultiLevelCache, cache_by_intent, configure
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.testing import FakeClock

from .support.llm import Counter


def signed_cache(shared: MemoryBackend, clock: FakeClock, secret: object) -> MultiLevelCache:
    return MultiLevelCache([shared], timer=clock, secret=secret)  # type: ignore[arg-type]


def reasons(events: list[dict[str, object]]) -> list[object]:
    return [e["reason"] for e in events if e["event"] == "cache.error"]


def test_signed_entries_round_trip_and_tampering_is_a_miss(clock: FakeClock, llm: Counter) -> None:
    """With a secret, entries verify; a tampered entry is a miss, deleted, and logged."""
    shared = MemoryBackend(maxsize=100, timer=clock)
    chat = cache_by_intent(cache=signed_cache(shared, clock, "s3cret"))(lambda prompt: llm(prompt))
    with capture_logs() as events:
        chat("Explain HMAC")
    key = str(events[-1]["key"])
    assert chat("Explain HMAC") == "answer #1 to Explain HMAC" and llm.calls == 1
    data = shared.get(key)
    assert data is not None and data[:1] == b"s"
    shared.set(key, data.replace(b"answer #1", b"answer #9"), 60)
    with capture_logs() as events:
        assert chat("Explain HMAC") == "answer #2 to Explain HMAC"
    assert reasons(events) == ["bad_signature"]
    assert shared.get(key) is not None  # the fresh answer replaced the deleted entry


def test_unsigned_and_foreign_entries_are_refused(clock: FakeClock, llm: Counter) -> None:
    """An unsigned entry, or one signed with a secret not accepted, is a miss."""
    shared = MemoryBackend(maxsize=100, timer=clock)
    unsigned = cache_by_intent(cache=MultiLevelCache([shared], timer=clock))(
        lambda prompt: llm(prompt)
    )
    unsigned("Explain MACs")
    signed = signed_cache(shared, clock, "new")
    as_reader = cache_by_intent(cache=signed)(lambda prompt: llm(prompt))
    with capture_logs() as events:
        as_reader("Explain MACs")
    assert reasons(events) == ["unsigned"] and llm.calls == 2
    other = cache_by_intent(cache=signed_cache(shared, clock, "other"))(lambda prompt: llm(prompt))
    with capture_logs() as events:
        other("Explain MACs")
    assert reasons(events) == ["unknown_key"] and llm.calls == 3


def test_secrets_rotate(clock: FakeClock, llm: Counter) -> None:
    """Entries signed with an older accepted secret still verify; the newest signs."""
    shared = MemoryBackend(maxsize=100, timer=clock)
    old = cache_by_intent(cache=signed_cache(shared, clock, "old"))(lambda prompt: llm(prompt))
    old("Explain key rotation")
    rotated = signed_cache(shared, clock, ["new", "old"])
    new = cache_by_intent(cache=rotated)(lambda prompt: llm(prompt))
    new("Explain key rotation")
    assert llm.calls == 1


def test_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, llm: Counter
) -> None:
    """``LLM_MIDDLEWARE_SECRET`` signs the default cache's entries."""
    monkeypatch.setenv("LLM_MIDDLEWARE_SECRET", "from-env")
    cache = MultiLevelCache([MemoryBackend(timer=clock)], timer=clock)
    assert cache.signer.enabled
    with pytest.raises(ConfigurationError, match="empty secret"):
        MultiLevelCache([MemoryBackend()], secret=[""])


def test_required_namespace_fails_closed(cache: MultiLevelCache, llm: Counter) -> None:
    """With ``namespace_required``, a call without a namespace runs uncached, with a warning."""

    @cache_by_intent(cache=cache, namespace=lambda a: a["user"], namespace_required=True)
    def chat(prompt: str, user: str | None) -> str:
        return llm(prompt)

    with capture_logs() as events:
        chat("Explain ACLs", user=None)
        chat("Explain ACLs", user="")
    bypasses = [e for e in events if e["event"] == "cache.bypass"]
    assert [(e["reason"], e["log_level"]) for e in bypasses] == [
        ("namespace_missing", "warning")
    ] * 2
    assert llm.calls == 2
    chat("Explain ACLs", user="ann")
    chat("Explain ACLs", user="ann")
    assert llm.calls == 3


def test_namespace_required_process_wide(cache: MultiLevelCache, llm: Counter) -> None:
    """``configure(namespace_required=True)`` applies to every decorated function."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    configure(namespace_required=True)
    chat("Explain ACLs")
    chat("Explain ACLs")
    assert llm.calls == 2
