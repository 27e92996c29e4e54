"""`MemcachedBackend` against real memcached servers: the contract, sharding, dead servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pymemcache")

from pymemcache.exceptions import MemcacheError, MemcacheIllegalInputError

from llm_middleware.backends.memcached import (
    DEFAULT_MAX_VALUE_BYTES,
    MAX_RELATIVE_EXPIRY,
    MemcachedBackend,
    _expire_arg,
)
from llm_middleware.contract import Backend
from llm_middleware.errors import ConfigurationError
from llm_middleware.testing import BackendContract
from tests.support.memcached_servers import MemcachedServer
from tests.support.outages import SocketCounter, hammer_through_restarts, wait_until_usable

pytestmark = pytest.mark.memcached

TIMEOUT = 0.25
DEAD_TIMEOUT = 0.5
SLACK = 1.0  # generous allowance for a loaded CI machine; no test relies on tight timing
DOWN = (OSError, MemcacheError)  # what a down server raises
WITHIN = DEAD_TIMEOUT + TIMEOUT + 3 * SLACK  # a server left out is used again by then


class TestMemcachedContract(BackendContract):
    """The shared backend contract, on one real server (real clock: memcached counts seconds)."""

    atomic_add = True

    @pytest.fixture
    def backend(self, memcached_server: MemcachedServer) -> Iterator[Backend]:
        """A backend on a fresh server."""
        self.server = memcached_server
        backend = MemcachedBackend(servers=[memcached_server.address])
        yield backend
        backend.close()

    def same_store(self, backend: Backend) -> str:
        return f"memcached://{self.server.address}"

    def stalled(self, backend: Backend) -> contextlib.AbstractContextManager[None]:
        """The server paused: a read waits out the backend's timeout."""
        return self.server.paused()


def fail_fast_until_dead(backend: MemcachedBackend, key: str) -> None:
    """Call ``get`` until the server is out of the ring; every call must raise, each within
    about ``timeout`` (a stale pooled socket and a refused connect may each cost one call)."""
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises((OSError, MemcacheError)) as info:
            backend.get(key)
        assert time.monotonic() - started < TIMEOUT + SLACK
        if "down" in str(info.value):
            return
    pytest.fail("server not taken out of the ring after 3 failures")


def test_keys_spread_over_servers(memcached_servers: list[MemcachedServer]) -> None:
    """Keys are sharded: both servers hold some, together all of them."""
    backend = MemcachedBackend(servers=",".join(s.address for s in memcached_servers))
    for i in range(100):
        backend.set(f"spread:{i}", b"v", 60)
    counts = [server.stats()["curr_items"] for server in memcached_servers]
    assert all(count > 0 for count in counts), counts
    assert sum(counts) == 100
    assert all(backend.get(f"spread:{i}") == b"v" for i in range(100))
    backend.close()


def test_dead_server_keys_move_to_live_one(memcached_servers: list[MemcachedServer]) -> None:
    """With one of two servers dead, its keys hash to the survivor after a failure or two."""
    dead, alive = memcached_servers
    backend = MemcachedBackend(
        servers=[dead.address, alive.address], timeout=TIMEOUT, dead_timeout=30
    )
    for i in range(40):
        backend.set(f"move:{i}", b"old", 60)
    dead.stop()
    failures = 0
    for i in range(40):
        try:
            backend.set(f"move:{i}", b"new", 60)
        except (OSError, MemcacheError):
            failures += 1
    assert 1 <= failures <= 2  # a stale pooled socket, then a refused connect
    for i in range(40):  # no failure now: every key lives on the survivor
        backend.set(f"move:{i}", b"new", 60)
    assert [backend.get(f"move:{i}") for i in range(40)] == [b"new"] * 40
    assert alive.stats()["curr_items"] == 40
    backend.close()


def test_hung_server(memcached_server: MemcachedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung server costs one timeout, is then skipped without connecting, then used again."""
    backend = MemcachedBackend(
        servers=[memcached_server.address], timeout=TIMEOUT, dead_timeout=DEAD_TIMEOUT
    )
    backend.set("hung", b"v", 60)
    memcached_server.pause()
    started = time.monotonic()
    with pytest.raises(OSError, match="timed out"):
        backend.get("hung")
    died = time.monotonic()
    assert died - started < TIMEOUT + SLACK

    sockets = SocketCounter(monkeypatch)
    for _ in range(20):
        with pytest.raises(MemcacheError, match="down"):
            backend.get("hung")
    assert time.monotonic() - died < 5 * TIMEOUT  # had each call waited: 20 * TIMEOUT
    assert sockets.created == 0

    memcached_server.resume()
    assert wait_until_usable(backend, "hung", DOWN, WITHIN) - died >= 0.8 * DEAD_TIMEOUT
    assert backend.get("hung") == b"back"
    assert sockets.created >= 1  # a fresh connection to the revived server
    backend.close()


def test_killed_server(memcached_server: MemcachedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed server fails fast, is skipped for ``dead_timeout``, and is used once restarted."""
    backend = MemcachedBackend(
        servers=[memcached_server.address], timeout=TIMEOUT, dead_timeout=DEAD_TIMEOUT
    )
    backend.set("killed", b"v", 60)
    memcached_server.stop()
    fail_fast_until_dead(backend, "killed")
    sockets = SocketCounter(monkeypatch)
    for _ in range(20):
        with pytest.raises(MemcacheError, match="down"):
            backend.set("killed", b"v", 60)
    assert sockets.created == 0

    memcached_server.restart()
    wait_until_usable(backend, "killed", DOWN, WITHIN)
    assert backend.get("killed") == b"back"
    backend.close()


def test_threads_while_a_server_dies(memcached_servers: list[MemcachedServer]) -> None:
    """8 threads, while one of two servers is killed and restarted, see only connection errors
    (upstream HashClient alone also raised ValueError from its unlocked bookkeeping)."""
    flaky, _ = memcached_servers
    backend = MemcachedBackend(
        servers=[s.address for s in memcached_servers], timeout=TIMEOUT, dead_timeout=0.05
    )
    unexpected = hammer_through_restarts(backend, flaky, DOWN, cycles=4)
    assert not unexpected, unexpected[:3]
    wait_until_usable(backend, "race:after", DOWN, WITHIN)
    assert backend.get("race:after") == b"back"
    backend.close()


def test_add(memcached_server: MemcachedServer) -> None:
    """``add`` stores only an absent key and says whether it did, sync and async."""
    backend = MemcachedBackend(servers=[memcached_server.address])
    assert backend.add("lock", b"me", 60) is True
    assert backend.add("lock", b"you", 60) is False
    assert backend.get("lock") == b"me"
    backend.delete("lock")
    assert asyncio.run(backend.aadd("lock", b"you", 60)) is True
    assert asyncio.run(backend.aadd("lock", b"me", 60)) is False
    backend.close()


def test_value_size_limit(memcached_server: MemcachedServer) -> None:
    """The default limit fits memcached's 1 MiB item with a 250-byte key; over it, ValueError."""
    backend = MemcachedBackend(servers=[memcached_server.address])
    assert backend.max_value_bytes == DEFAULT_MAX_VALUE_BYTES
    key = "k" * 250
    biggest = b"x" * backend.max_value_bytes
    backend.set(key, biggest, 60)
    assert backend.get(key) == biggest
    with pytest.raises(ValueError, match="max_value_bytes"):
        backend.set("too-big", biggest + b"x", 60)
    assert backend.get("too-big") is None
    small = MemcachedBackend(servers=[memcached_server.address], max_value_bytes=10)
    with pytest.raises(ValueError, match="max_value_bytes"):
        small.set("eleven", b"x" * 11, 60)
    small.close()
    backend.close()


def test_bad_values_and_keys(memcached_server: MemcachedServer) -> None:
    """Non-bytes values are a TypeError; keys with spaces or over 250 bytes are refused."""
    backend = MemcachedBackend(servers=[memcached_server.address])
    with pytest.raises(TypeError):
        backend.set("text", "not bytes", 60)  # type: ignore[arg-type]
    with pytest.raises(MemcacheIllegalInputError):
        backend.get("has space")
    with pytest.raises(MemcacheIllegalInputError):
        backend.set("k" * 251, b"v", 60)
    backend.close()


def test_ttl_over_30_days(memcached_server: MemcachedServer) -> None:
    """A ttl past memcached's 30-day relative limit still stores (as an absolute time)."""
    backend = MemcachedBackend(servers=[memcached_server.address])
    backend.set("long", b"v", 31 * 24 * 3600)
    backend.set("fraction", b"v", 0.2)
    assert backend.get("long") == b"v"
    assert backend.get("fraction") == b"v"
    backend.close()


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        (0.001, 1),
        (1.0, 1),
        (1.01, 2),
        (300, 300),
        (MAX_RELATIVE_EXPIRY, MAX_RELATIVE_EXPIRY),
        (MAX_RELATIVE_EXPIRY + 0.5, 1_000_000 + MAX_RELATIVE_EXPIRY + 1),
        (365 * 24 * 3600, 1_000_000 + 365 * 24 * 3600),
    ],
)
def test_expire_arg(ttl: float, expected: int) -> None:
    """TTLs round up to whole seconds; past 30 days they become unix times."""
    assert _expire_arg(ttl, now=1_000_000.0) == expected


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_expire_arg_refuses_non_positive(ttl: float) -> None:
    """A ttl that is not a positive finite number is refused (0 would mean "forever")."""
    with pytest.raises(ValueError, match="ttl"):
        _expire_arg(ttl, now=1_000_000.0)


def test_from_url() -> None:
    """``from_url`` reads servers from the location; options are keyword arguments."""
    backend = MemcachedBackend.from_url("127.0.0.1:1,127.0.0.1:2", timeout=0.2, dead_timeout=5.0)
    assert backend.servers == ("127.0.0.1:1", "127.0.0.1:2")
    assert MemcachedBackend.from_url("").servers == ("127.0.0.1:11211",)
    assert MemcachedBackend.from_url("h1/").servers == ("h1:11211",)
    assert MemcachedBackend(servers=" h1:1 , [::1]:2 ,").servers == ("h1:1", "[::1]:2")
    with pytest.raises(ConfigurationError, match="both"):
        MemcachedBackend.from_url("h1:1", servers=["h2:2"])
    with pytest.raises(TypeError):
        MemcachedBackend.from_url("h1:1", timout=0.2)


@pytest.mark.parametrize(
    "options",
    [
        {"servers": "h1:notaport"},
        {"servers": "h1:70000"},
        {"servers": ","},
        {"servers": []},
        {"timeout": 0},
        {"dead_timeout": -1},
        {"max_pool_size": 0},
        {"max_value_bytes": 0},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    """Bad servers or option values raise ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        MemcachedBackend(**options)


def test_from_url_on_a_real_server(memcached_server: MemcachedServer) -> None:
    """A backend built by ``from_url`` talks to the server it names."""
    backend = MemcachedBackend.from_url(memcached_server.address + "/", timeout=0.5)
    backend.set("url", b"v", 60)
    assert backend.get("url") == b"v"
    backend.close()
