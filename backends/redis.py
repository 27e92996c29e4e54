"""Shared, persistent tier on Redis (redis-py): one server, or a Redis Cluster.

Values are the raw bytes given, stored by ``SET key value PX <ms>``. The sync methods share a
pooled, thread-safe client; the async twins use ``redis.asyncio`` (no thread hop) with one
client per event loop (asyncio connections belong to their loop), closed with that loop.

Failures **raise** (the core logs ``cache.error``: a miss or a skipped store), bounded three
ways (measured: ``docs/backends-redis-sqlite.md``): socket timeouts of 0.25 s (redis-py: 5 s);
no redis-py retries, ``Retry(NoBackoff(), 0)`` (``redis.Redis(host=...)`` defaults to 10, with
backoff); and a circuit breaker: after a connection error or timeout the server is skipped for
``dead_timeout`` seconds, each call raising `RedisUnavailable` at once, then one call probes
it. redis-py has no breaker for one server (``health_check_interval`` PINGs a pooled
connection before reuse, which against a hung server still costs a timeout per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, MaxConnectionsError, RedisClusterException
from redis.retry import Retry

from llm_middleware.contract import ConfigurationError, checking_options

from ._fork import abandon, renew_after_fork

__all__ = ["RedisBackend", "RedisClusterBackend", "RedisTLSBackend", "RedisUnavailable"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024
_SCHEMES = ("redis", "rediss", "unix")
#: Errors saying the server is unreachable or unusable: they open the breaker.
_DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, RedisClusterException)


class RedisUnavailable(redis.ConnectionError):
    """Raised at once, without touching the network, while the breaker is open."""


class _Breaker:
    """Fail fast for ``dead_timeout`` seconds after a failure; then let one call probe."""

    def __init__(self, name: str, dead_timeout: float) -> None:
        self.name, self.dead_timeout = name, dead_timeout
        self._lock = threading.Lock()
        self._failed_at: float | None = None  # None: healthy
        self._open_until = 0.0

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Around one call: raise at once while open; record how the call went."""
        failed_at = self._failed_at
        if failed_at is not None:
            with self._lock:
                now = time.monotonic()
                if now < self._open_until:
                    raise RedisUnavailable(
                        f"{self.name} is down (failed {now - failed_at:.2f} s ago); "
                        f"not tried for another {self._open_until - now:.2f} s"
                    )
                self._open_until = now + self.dead_timeout  # this call probes; others wait
        try:
            yield
        except MaxConnectionsError:
            raise  # our own pool is full; the server is fine
        except (*_DOWN_ERRORS, OSError):
            if self.dead_timeout > 0:
                with self._lock:
                    self._failed_at = time.monotonic()
                    self._open_until = self._failed_at + self.dead_timeout
            raise
        except redis.RedisError:
            self._failed_at, self._open_until = None, 0.0  # it answered, if with an error
            raise
        self._failed_at, self._open_until = None, 0.0


def _redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and reprs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _px(ttl: float) -> int:
    """``ttl`` seconds as Redis ``PX`` milliseconds, rounded up, at least 1."""
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl!r}")
    return max(1, math.ceil(ttl * 1000))


class RedisBackend:
    """A Redis tier. ``url``: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS),
    ``unix:///path.sock?db=0``; ``cluster``: Redis Cluster, the URL naming a seed node;
    ``socket_timeout``/``socket_connect_timeout``: seconds; ``dead_timeout``: seconds a failed
    server is skipped (0: never); ``max_connections``: per pool (``None``: redis-py's);
    ``max_value_bytes``: longer values raise ``ValueError``; ``ssl_ca_certs``/``ssl_cert_reqs``
    (``required``/``optional``/``none``): TLS trust; ``client_options``: more redis-py kwargs.
    """

    shared = True
    """Reachable from outside the process: encrypted when the cache has an ``encryption_key``."""

    #: The scheme `from_url` puts in front of the location (registry entry ``redis``).
    url_scheme: ClassVar[str] = "redis"
    #: Whether `from_url` builds a Redis Cluster client (registry entry ``redis+cluster``).
    cluster_default: ClassVar[bool] = False

    def __init__(
        self,
        *,
        url: str = DEFAULT_URL,
        cluster: bool = False,
        socket_timeout: float = 0.25,
        socket_connect_timeout: float = 0.25,
        dead_timeout: float = 10.0,
        max_connections: int | None = None,
        max_value_bytes: int | None = DEFAULT_MAX_VALUE_BYTES,
        ssl_ca_certs: str | None = None,
        ssl_cert_reqs: str | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        with checking_options("RedisBackend"):
            if urlsplit(url).scheme not in _SCHEMES:
                raise ConfigurationError(f"not a redis URL: {_redacted(url)!r} (want redis://...)")
            if not (socket_timeout > 0 and socket_connect_timeout > 0 and dead_timeout >= 0):
                raise ConfigurationError("socket timeouts must be > 0 s, dead_timeout >= 0 s")
            if any(n is not None and n < 1 for n in (max_connections, max_value_bytes)):
                raise ConfigurationError("max_connections and max_value_bytes must be >= 1 or None")
        self.url = url
        self.cluster = cluster
        self.max_value_bytes = max_value_bytes
        given = {"max_connections": max_connections, "ssl_ca_certs": ssl_ca_certs}
        given["ssl_cert_reqs"] = ssl_cert_reqs
        self._options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        self._options.update(
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            **(client_options or {}),
        )
        self._breaker = _Breaker(repr(self), dead_timeout)
        self._lock = threading.Lock()
        self._client: Any = None
        self._aclients: dict[asyncio.AbstractEventLoop, tuple[Any, AsyncGenerator[None, None]]]
        self._aclients = {}
        renew_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: new locks, and new clients on first use (the parent's
        connections are left to the parent; event loops do not cross a fork)."""
        self._lock = threading.Lock()
        self._breaker._lock = threading.Lock()
        abandon(self._client)
        abandon(list(self._aclients.values()))
        self._client, self._aclients = None, {}

    @classmethod
    def from_url(cls, location: str, **options: Any) -> RedisBackend:
        """Build from a URL's location, ``"[user:password@]host:port/db"`` (empty: the
        default ``127.0.0.1:6379/0``); the scheme is the class's ``url_scheme``."""
        if location:
            if "url" in options:
                raise ConfigurationError("redis server given both in the URL and as url=")
            options["url"] = f"{cls.url_scheme}://{location}"
        options.setdefault("url", DEFAULT_URL.replace("redis", cls.url_scheme, 1))
        options["cluster"] = bool(options.get("cluster")) or cls.cluster_default
        return cls(**options)

    def __repr__(self) -> str:
        kind = ", cluster=True" if self.cluster else ""
        return f"{type(self).__name__}(url={_redacted(self.url)!r}{kind})"

    def get(self, key: str) -> bytes | None:
        """Return the stored bytes, or ``None`` when absent or expired."""
        with self._breaker.guard():
            value: bytes | None = self._sync_client().get(key)
        return value

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (``PX``, rounded up to whole milliseconds)."""
        px = self._checked(value, ttl)
        with self._breaker.guard():
            self._sync_client().set(key, value, px=px)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` is absent (``SET NX PX``, atomic); ``True``
        when stored. The cache takes its cross-process stampede locks with it."""
        px = self._checked(value, ttl)
        with self._breaker.guard():
            return bool(self._sync_client().set(key, value, px=px, nx=True))

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""
        with self._breaker.guard():
            self._sync_client().delete(key)

    def close(self) -> None:
        """Close the sync client, drop the async ones (each closes in its loop if that still
        runs: in async code prefer `aclose`); closing twice is harmless."""
        with self._lock:
            client, self._client = self._client, None
            self._aclients.clear()
        if client is not None:
            client.close()

    async def aget(self, key: str) -> bytes | None:
        """`get` on ``redis.asyncio``: the event loop never waits on the network."""
        with self._breaker.guard():
            value: bytes | None = await (await self._async_client()).get(key)
        return value

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        """`set` on ``redis.asyncio``."""
        px = self._checked(value, ttl)
        with self._breaker.guard():
            await (await self._async_client()).set(key, value, px=px)

    async def aadd(self, key: str, value: bytes, ttl: float) -> bool:
        """`add` on ``redis.asyncio``."""
        px = self._checked(value, ttl)
        with self._breaker.guard():
            return bool(await (await self._async_client()).set(key, value, px=px, nx=True))

    async def adelete(self, key: str) -> None:
        """`delete` on ``redis.asyncio``."""
        with self._breaker.guard():
            await (await self._async_client()).delete(key)

    async def aclose(self) -> None:
        """Close this loop's async client, then the sync client."""
        with self._lock:
            entry = self._aclients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()
        self.close()

    def _sync_client(self) -> Any:
        with self._lock:  # a cluster client connects when built: inside the breaker's guard
            if self._client is None:
                factory = redis.cluster.RedisCluster if self.cluster else redis.Redis
                retry = Retry(NoBackoff(), 0)
                self._client = factory.from_url(self.url, retry=retry, **self._options)
            return self._client

    async def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._aclients.get(loop)
            if entry is not None:
                return entry[0]
            for closed in [old for old in self._aclients if old.is_closed()]:
                del self._aclients[closed]  # closed without shutdown_asyncgens: just forget
            factory: Any = redis.asyncio.RedisCluster if self.cluster else redis.asyncio.Redis
            retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
            client = factory.from_url(self.url, retry=retry, **self._options)
            closer = self._closing(loop, client)
            self._aclients[loop] = (client, closer)
        await closer.__anext__()  # started: now the loop finalizes it when it shuts down
        return client

    async def _closing(
        self, loop: asyncio.AbstractEventLoop, client: Any
    ) -> AsyncGenerator[None, None]:
        """Forgets and closes ``client`` when finalized: by the loop's ``shutdown_asyncgens``
        (``asyncio.run`` calls it), by `aclose`, or in its loop when dropped by `close`."""
        try:
            yield
        finally:
            with self._lock:
                if self._aclients.get(loop, (None,))[0] is client:
                    del self._aclients[loop]
            await client.aclose()

    def _checked(self, value: bytes, ttl: float) -> int:
        if not isinstance(value, bytes):
            raise TypeError(f"redis values are bytes, got {type(value).__name__}")
        if self.max_value_bytes is not None and len(value) > self.max_value_bytes:
            raise ValueError(f"{len(value)}-byte value > max_value_bytes={self.max_value_bytes}")
        return _px(ttl)


class RedisTLSBackend(RedisBackend):
    """`RedisBackend` whose `from_url` speaks TLS: registry entry ``rediss``."""

    url_scheme = "rediss"


class RedisClusterBackend(RedisBackend):
    """`RedisBackend` whose `from_url` talks Redis Cluster: registry entry ``redis+cluster``."""

    cluster_default = True
