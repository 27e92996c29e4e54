"""`RedisBackend` against real Redis servers: the contract, URLs, the breaker, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import time
import weakref
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint

import pytest

pytest.importorskip("redis")

import redis
from redis.exceptions import RedisClusterException
from structlog.testing import capture_logs

from llm_middleware import (
    ConfigurationError,
    MultiLevelCache,
    backend_from_url,
    cache_by_intent,
    registry,
)
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.backends.redis import (
    RedisBackend,
    RedisClusterBackend,
    RedisTLSBackend,
    RedisUnavailable,
    _px,
)
from llm_middleware.contract import Backend
from llm_middleware.testing import BackendContract
from tests.support.llm import Counter
from tests.support.outages import SocketCounter, hammer_through_restarts, wait_until_usable
from tests.support.redis_servers import RedisServer
from tests.support.second_process import ask_in_a_new_process

TIMEOUT = 0.25
DEAD_TIMEOUT = 0.5
SLACK = 1.0  # generous allowance for a loaded CI machine; no test relies on tight timing
WITHIN = DEAD_TIMEOUT + TIMEOUT + 3 * SLACK  # a server left out is used again by then
DOWN = (redis.RedisError, RedisClusterException)  # what a down server (or cluster) raises


class TestRedisContract(BackendContract):
    """The shared backend contract on one real server (real clock; Redis expires in ms)."""

    real_ttl = 0.3
    expiry_grace = 1.0

    atomic_add = True

    @pytest.fixture
    def backend(self, redis_server: RedisServer) -> Iterator[Backend]:
        """A backend on a fresh server (timeouts for a loaded machine: 20 parallel connects)."""
        self.server = redis_server
        backend = RedisBackend(url=redis_server.url, socket_timeout=2, socket_connect_timeout=2)
        yield backend
        backend.close()

    def same_store(self, backend: Backend) -> str:
        return self.server.url

    def stalled(self, backend: Backend) -> contextlib.AbstractContextManager[None] | None:
        """The server paused: a read waits out the socket timeout."""
        return self.server.paused()


class TestRedisClusterContract(TestRedisContract):
    """The same contract through the Redis Cluster client, on a one-node cluster."""

    @pytest.fixture
    def backend(self, redis_cluster: RedisServer) -> Iterator[Backend]:
        """A cluster backend on the module's one-node cluster, flushed."""
        if not redis_cluster.running:
            redis_cluster.restart()
        redis_cluster.command("FLUSHALL")
        self.cluster = redis_cluster
        backend = RedisClusterBackend.from_url(
            redis_cluster.address, socket_timeout=2, socket_connect_timeout=2
        )
        yield backend
        backend.close()

    def same_store(self, backend: Backend) -> str:
        return f"redis+cluster://{self.cluster.address}"

    def stalled(self, backend: Backend) -> None:
        """Not stalled: pausing the cluster's one node would fail the module's cluster."""
        return None


def timed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    """Seconds ``call()`` took, and what it raised (``None`` if nothing)."""
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


@pytest.fixture(params=["single", "cluster"])
def running(request: pytest.FixtureRequest) -> RedisServer:
    """A fresh plain server, then the module's one-node Redis Cluster, flushed (restarted
    first if an earlier test left it stopped)."""
    if request.param == "single":
        single: RedisServer = request.getfixturevalue("redis_server")
        return single
    cluster: RedisServer = request.getfixturevalue("redis_cluster")
    if not cluster.running:
        cluster.restart()
    cluster.command("FLUSHALL")
    return cluster


def test_hung_server(running: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung server costs one timeout (a cluster: two, with the topology refresh), is then
    skipped without a socket for dead_timeout, and is used again once it answers."""
    server = running
    backend = RedisBackend(url=server.url, cluster=server.cluster, dead_timeout=DEAD_TIMEOUT)
    backend.set("hung", b"v", 60)
    server.pause()
    try:
        took, error = timed(lambda: backend.get("hung"))
        expected = RedisClusterException if server.cluster else redis.TimeoutError
        assert isinstance(error, expected), error
        assert TIMEOUT * 0.8 < took < (2 if server.cluster else 1) * TIMEOUT + SLACK
        died = time.monotonic()
        sockets = SocketCounter(monkeypatch)
        for _ in range(200):
            with pytest.raises(RedisUnavailable, match="is down"):
                backend.set("hung", b"v", 60)
        assert time.monotonic() - died < 0.5 * DEAD_TIMEOUT and sockets.created == 0
    finally:
        server.resume()
    assert wait_until_usable(backend, "hung", DOWN, WITHIN) - died >= 0.8 * DEAD_TIMEOUT
    assert backend.get("hung") == b"back"
    backend.close()


def test_killed_and_restarted_server(running: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed server fails fast and is skipped for dead_timeout; a restarted plain server
    is used again (a cluster is not restarted here: that costs Redis's 2 s writable delay;
    `test_hung_server` covers a cluster's recovery)."""
    server = running
    backend = RedisBackend(url=server.url, cluster=server.cluster, dead_timeout=DEAD_TIMEOUT)
    backend.set("killed", b"v", 60)
    server.stop()
    took, error = timed(lambda: backend.get("killed"))
    assert isinstance(error, DOWN) and not isinstance(error, RedisUnavailable), error
    assert took < TIMEOUT + SLACK  # a refused connection: no timeout to wait for
    sockets = SocketCounter(monkeypatch)
    with pytest.raises(RedisUnavailable):
        backend.get("killed")
    assert sockets.created == 0
    if not server.cluster:
        server.restart()
        wait_until_usable(backend, "killed", DOWN, WITHIN)
        assert backend.get("killed") == b"back"
    backend.close()


def test_async_twins_share_the_breaker(
    redis_server: RedisServer,
) -> None:
    """``aget`` on a hung server times out; then it fails fast, sync side too (that it
    never blocks the loop meanwhile is `BackendContract.test_async_never_blocks_the_loop`)."""
    backend = RedisBackend(url=redis_server.url, dead_timeout=DEAD_TIMEOUT)

    async def scenario() -> None:
        await backend.aset("loop", b"v", 60)
        redis_server.pause()
        with pytest.raises(redis.TimeoutError):
            await backend.aget("loop")
        started = time.monotonic()
        with pytest.raises(RedisUnavailable):
            await backend.aget("loop")
        assert time.monotonic() - started < 0.05
        await backend.aclose()

    asyncio.run(scenario())
    with pytest.raises(RedisUnavailable):
        backend.get("loop")  # the sync side sees the same breaker
    redis_server.resume()
    backend.close()


def test_each_event_loop_gets_a_client_closed_with_the_loop(redis_server: RedisServer) -> None:
    """Consecutive ``asyncio.run`` calls work, and leave no connection open and no loop
    referenced behind them."""
    backend = RedisBackend(url=redis_server.url)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def roundtrip(n: int) -> bytes | None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await backend.aset(f"loop:{n}", b"v", 60)
        return await backend.aget(f"loop:{n}")

    assert [asyncio.run(roundtrip(n)) for n in range(3)] == [b"v"] * 3
    gc.collect()
    assert [ref() for ref in loops] == [None] * 3
    deadline = time.monotonic() + 2.0
    while len(redis_server.command("CLIENT", "LIST").splitlines()) > 1:  # 1: this very query
        assert time.monotonic() < deadline, redis_server.command("CLIENT", "LIST")
        time.sleep(0.01)
    backend.close()


def test_threads_while_the_server_dies(redis_server: RedisServer) -> None:
    """8 threads, while the server is killed and restarted, see only redis errors."""
    backend = RedisBackend(url=redis_server.url, dead_timeout=0.05)
    unexpected = hammer_through_restarts(backend, redis_server, DOWN, cycles=2)
    assert not unexpected, unexpected[:3]
    wait_until_usable(backend, "race:after", DOWN, WITHIN)
    backend.close()


def test_redis_killed_mid_run(redis_server: RedisServer, llm: Counter) -> None:
    """Through the cache: Redis killed mid-run costs no failed call and little time per call;
    once it is back (after dead_timeout), answers are stored and served from it again."""
    backend = RedisBackend(url=redis_server.url, dead_timeout=DEAD_TIMEOUT)
    cache = MultiLevelCache([MemoryBackend(maxsize=1000), backend])

    def answer(prompt: str) -> str:
        return llm(prompt)

    chat = cache_by_intent(cache=cache)(answer)
    latencies: list[float] = []
    failures = 0
    with capture_logs() as events:
        for i in range(60):
            if i == 20:
                redis_server.stop()
            if i == 40:
                redis_server.restart()
                time.sleep(DEAD_TIMEOUT + 0.1)
            took, error = timed(functools.partial(chat, f"Explain topic {i}"))
            latencies.append(took)
            failures += error is not None
    assert failures == 0 and llm.calls == 60
    assert max(latencies) < TIMEOUT + SLACK
    errors = [e for e in events if e["event"] == "cache.error"]
    assert errors and {e["tier"] for e in errors} == {"L2"}
    assert sum("RedisUnavailable" in e["error"] for e in errors) >= len(errors) - 2
    assert int(redis_server.command("DBSIZE")) == 20  # stored again after the restart
    fresh = MultiLevelCache([MemoryBackend(), RedisBackend(url=redis_server.url)])
    assert (
        cache_by_intent(cache=fresh)(answer)("Explain topic 59") == "answer #60 to Explain topic 59"
    )
    assert fresh.stats()["hits"] == {"L2": 1} and llm.calls == 60
    fresh.close()
    cache.close()


def test_a_long_answer_survives_a_restart(redis_server: RedisServer) -> None:
    """A second process gets the first one's LONG answer from Redis, uncalled."""
    first = ask_in_a_new_process(RedisBackend, url=redis_server.url)
    second = ask_in_a_new_process(RedisBackend, url=redis_server.url)
    assert (first["calls"], first["hits"]) == (1, {})
    assert (second["calls"], second["hits"]) == (0, {"L2": 1})
    assert second["answer"] == first["answer"]
    ttl_ms = int(redis_server.command("PTTL", redis_server.command("KEYS", "*")[0]))
    assert 86_000_000 < ttl_ms <= 86_400_000  # LONG: a day, in milliseconds


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The redis entry points as pyproject.toml declares them, registered for this test."""
    entry_points = dict(registry.registered_backends())
    for name, cls in [
        ("redis", "RedisBackend"),
        ("rediss", "RedisTLSBackend"),
        ("redis+cluster", "RedisClusterBackend"),
    ]:
        entry_points[name] = EntryPoint(
            name, f"llm_middleware.backends.redis:{cls}", registry.GROUP
        )
    monkeypatch.setattr(registry, "_entry_points", entry_points)


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize(
    ("url", "cls", "redis_url", "cluster"),
    [
        ("redis://", RedisBackend, "redis://127.0.0.1:6379/0", False),
        ("redis://h:1/2", RedisBackend, "redis://h:1/2", False),
        ("redis://u:p%40ss@h:1/0", RedisBackend, "redis://u:p%40ss@h:1/0", False),
        ("rediss://h:1/0", RedisTLSBackend, "rediss://h:1/0", False),
        ("rediss://", RedisTLSBackend, "rediss://127.0.0.1:6379/0", False),
        ("redis+cluster://h:7000", RedisClusterBackend, "redis://h:7000", True),
        ("redis://h:7000?cluster=true", RedisBackend, "redis://h:7000", True),
        ("rediss://h:7000?cluster=yes", RedisTLSBackend, "rediss://h:7000", True),
        ("redis://?url=unix:///run/redis.sock", RedisBackend, "unix:///run/redis.sock", False),
    ],
)
def test_urls(url: str, cls: type[RedisBackend], redis_url: str, cluster: bool) -> None:
    """Each scheme builds its class; the location becomes redis-py's URL (not connected yet)."""
    backend = backend_from_url(url)
    assert type(backend) is cls
    assert (backend.url, backend.cluster) == (redis_url, cluster)


@pytest.mark.usefixtures("registered")
def test_url_options_and_mistakes(redis_server: RedisServer) -> None:
    """Query options are converted to their types; mistakes raise at once; no password shows."""
    backend = backend_from_url(
        f"redis://{redis_server.address}/0?socket_timeout=0.5&dead_timeout=2&max_value_bytes=9"
    )
    assert isinstance(backend, RedisBackend) and backend.max_value_bytes == 9
    backend.set("k", b"v", 60)
    assert backend.get("k") == b"v"
    with pytest.raises(ValueError, match="max_value_bytes"):
        backend.set("k", b"0123456789", 60)
    backend.close()
    for url, message in [
        ("redis://h?socket_timeot=1", "valid options: client_options, cluster, dead_timeout"),
        ("redis://h?socket_timeout=0", "socket timeouts"),
        ("redis://h?url=redis://g", "both in the URL"),
        ("redis://?url=http://g", "not a redis URL"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            backend_from_url(url)
    secret = RedisBackend(url="redis://user:hunter2@127.0.0.1:1/0", dead_timeout=5)
    assert "hunter2" not in repr(secret)
    with pytest.raises(redis.ConnectionError):
        secret.get("k")
    with pytest.raises(RedisUnavailable) as info:
        secret.get("k")
    assert "hunter2" not in str(info.value) and "user:***@127.0.0.1:1" in str(info.value)


@pytest.mark.parametrize(("ttl", "px"), [(0.0001, 1), (0.2, 200), (1.0001, 1001), (300, 300_000)])
def test_px(ttl: float, px: int) -> None:
    """TTLs become whole milliseconds, rounded up, at least 1."""
    assert _px(ttl) == px


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_px_refuses_non_positive(ttl: float) -> None:
    """A ttl that is not a positive finite number is refused."""
    with pytest.raises(ValueError, match="ttl"):
        _px(ttl)


def test_add_is_atomic_and_takes_stampede_locks(redis_server: RedisServer) -> None:
    """``add`` stores only an absent key, so Redis can hold cross-process locks."""
    import asyncio

    from llm_middleware import MultiLevelCache
    from llm_middleware.backends.memory import MemoryBackend

    backend = RedisBackend.from_url(redis_server.url.split("://", 1)[1])
    assert backend.add("lock", b"1", 5) is True
    assert backend.add("lock", b"2", 5) is False
    assert backend.get("lock") == b"1"
    assert asyncio.run(backend.aadd("lock", b"3", 5)) is False
    cache = MultiLevelCache([MemoryBackend(), backend])
    assert cache.lock_tier(None) is cache.tiers[1]
    backend.close()
