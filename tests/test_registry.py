"""Backends by name and URL, through the entry-point group; configuration errors are clear."""

from __future__ import annotations

import importlib

import pytest

from llm_middleware import (
    ConfigurationError,
    backend_from_url,
    cache_by_intent,
    configure,
    load_backend,
)
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.config import default_cache

from .support.llm import Counter


def test_memory_is_resolved_through_the_entry_point_group() -> None:
    """``memory`` is found by name and by URL, with options converted to their types."""
    backend = load_backend("memory", maxsize=5, ttl=60)
    assert isinstance(backend, MemoryBackend) and backend.maxsize == 5
    from_url = backend_from_url("memory://?maxsize=100&ttl=300")
    assert isinstance(from_url, MemoryBackend)
    assert (from_url.maxsize, from_url.ttl) == (100, 300.0)


def test_unknown_backend_lists_the_registered_names() -> None:
    """An unknown name raises at once and says which names exist."""
    with pytest.raises(ConfigurationError, match=r"unknown cache backend 'memcache'.*memory"):
        load_backend("memcache")
    with pytest.raises(ConfigurationError, match="registered backends"):
        backend_from_url("nosuch://host")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "memory://?maxsize=100&tll=300",
            "no option 'tll'; valid options: maxsize, shared, timer, ttl",
        ),
        ("memory://?maxsize=many", "maxsize='many' is not a int"),
        ("memory://somewhere?maxsize=1", "takes no location"),
        ("memory:/?x", "not a backend URL"),
        ("memory://?maxsize=0", "maxsize must be at least 1"),
    ],
)
def test_bad_urls_and_options_raise_at_once(url: str, message: str) -> None:
    """Misspelled options, bad values and malformed URLs are configuration errors."""
    with pytest.raises(ConfigurationError, match=message):
        backend_from_url(url)


@pytest.mark.parametrize(
    ("module", "name", "options"),
    [
        ("memory", "MemoryBackend", {"maxsize": "10"}),
        ("memory", "MemoryBackend", {"ttl": "60"}),
        ("memcached", "MemcachedBackend", {"servers": 11211}),
        ("memcached", "MemcachedBackend", {"servers": "127.0.0.1:11211", "timeout": "1"}),
        ("redis", "RedisBackend", {"url": 6379}),
        ("redis", "RedisBackend", {"socket_timeout": "1"}),
        ("sqlite", "SQLiteBackend", {"path": 3}),
        ("sqlite", "SQLiteBackend", {"path": "cache.db", "busy_timeout": "1"}),
    ],
)
def test_a_built_in_backend_refuses_a_wrong_typed_option_as_it_refuses_a_bad_value(
    module: str, name: str, options: dict[str, object]
) -> None:
    """Made directly, each built-in backend raises `ConfigurationError` for an option of
    the wrong type too (not a bare TypeError from inside its checks), naming itself."""
    backend_class = getattr(importlib.import_module(f"llm_middleware.backends.{module}"), name)
    with pytest.raises(ConfigurationError, match=name):
        backend_class(**options)


def test_bad_option_name_in_code() -> None:
    """`load_backend` refuses an unknown option, naming the valid ones."""
    with pytest.raises(ConfigurationError, match="valid options"):
        load_backend("memory", max_size=3)


def test_tiers_from_the_environment(monkeypatch: pytest.MonkeyPatch, llm: Counter) -> None:
    """``LLM_MIDDLEWARE_TIERS`` configures the default cache's tiers."""
    monkeypatch.setenv("LLM_MIDDLEWARE_TIERS", "memory://?maxsize=2;memory://?maxsize=50")
    cache = default_cache()
    assert [b.maxsize for b in cache.backends] == [2, 50]  # type: ignore[attr-defined]
    chat = cache_by_intent(lambda prompt: llm(prompt))
    chat("Explain x")
    chat("Explain x")
    assert llm.calls == 1


def test_configure_tiers_in_code() -> None:
    """`configure(tiers=...)` takes URLs or backends; mistakes raise there."""
    cache = configure(tiers=["memory://?maxsize=3", MemoryBackend(maxsize=9)])
    assert [t.name for t in cache.tiers] == ["L1", "L2"]
    with pytest.raises(ConfigurationError, match="unknown cache backend"):
        configure(tiers="memory://;bogus://")
    with pytest.raises(ConfigurationError, match="not both"):
        configure(cache=cache, tiers="memory://")
