"""Shared memcached tier on pymemcache's ``HashClient``: several servers, pooled, thread-safe.

Keys are spread over the servers by rendezvous (consistent) hashing, scored with BLAKE2b
(pymemcache's default score, murmur3 in pure Python, costs about 20 µs per call); each server
has its own connection pool, so one backend may be shared by all threads of a process. Values
are stored as the raw bytes given (no serde, never pickle).

Failure behaviour (measured with memcached 1.6 on localhost, ``timeout=0.25``):

* Every failure **raises** (``ignore_exc=False``); the core logs ``cache.error`` and treats it
  as a miss or a skipped store. Nothing fails silently.
* The first call that meets a dead or hung server pays at most about ``timeout`` (a hung
  server: 251 ms, ``TimeoutError``; a killed one: under 1 ms, ``ConnectionRefusedError``) and,
  with the default ``retry_attempts=0``, takes the server out of the hash ring at once. A
  pooled socket the server closed raises ``MemcacheUnexpectedCloseError`` once (the socket is
  dropped, the server is not: a restarted server is fine on the next connection).
* For the next ``dead_timeout`` seconds no connection to it is attempted: its keys hash to the
  remaining servers (misses at first), and with no server left every call raises
  ``MemcacheError("All servers seem to be down right now")`` in about 0.1 ms.
* After ``dead_timeout`` the server joins the ring again with a fresh pool; if it is still
  down, the next call pays one more timeout and it is out for another ``dead_timeout``.

``retry_attempts=N > 0`` is pymemcache's other mode: a failing server answers "miss" / "not
stored" *without an error* for ``retry_timeout`` seconds, then is tried again, N times, before
it is taken out: each try costs a full timeout (a hung server cost 4 timeouts for N=2), so it
is not the default. Upstream ``HashClient`` keeps its dead-server bookkeeping without a lock
and revives servers up to ``2 * dead_timeout`` late; ``_LockedHashClient`` fixes both.

``max_value_bytes``: memcached's default item limit (``-I 1m``) counts the item header and the
key too; measured, a 250-byte key leaves 1,048,267 bytes of value (309 bytes of overhead).
The default keeps a 1 KiB margin (1,047,552 bytes) for header growth across versions; set it
to your servers' ``-I`` minus 1 KiB. ``set`` refuses a longer value with ``ValueError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

from pymemcache.client.base import normalize_server_spec
from pymemcache.client.hash import HashClient
from pymemcache.client.rendezvous import RendezvousHash
from pymemcache.exceptions import MemcacheError

from llm_middleware.contract import ConfigurationError, checking_options

from ._fork import abandon, renew_after_fork

__all__ = ["MemcachedBackend"]

DEFAULT_SERVERS = ("127.0.0.1:11211",)
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024 - 1024
MAX_RELATIVE_EXPIRY = 30 * 24 * 3600  # memcached reads a larger expiry as a unix timestamp


def _parse_servers(servers: Sequence[str] | str) -> list[Any]:
    """``"h1:11211,h2"`` or ``["h1:11211", "/run/mc.sock"]`` -> pymemcache server specs."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    specs: list[Any] = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if text == "":
            continue
        try:
            spec = normalize_server_spec(text)
        except ValueError as exc:
            raise ConfigurationError(f"bad memcached server {item!r}: want host:port") from exc
        if isinstance(spec, tuple) and not 0 < spec[1] < 65536:
            raise ConfigurationError(f"bad memcached server {item!r}: port out of range")
        specs.append(spec)
    if not specs:
        raise ConfigurationError("no memcached server given")
    return specs


def _format_server(spec: Any) -> str:
    """A pymemcache server spec back as text: ``host:port``, ``[v6]:port`` or a socket path."""
    if isinstance(spec, str):
        return spec
    host, port = spec
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _expire_arg(ttl: float, now: float) -> int:
    """memcached's ``exptime`` for ``ttl`` seconds: whole seconds rounded up, at least 1;
    past 30 days an absolute unix time (so it relies on client and server clocks agreeing)."""
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl!r}")
    seconds = max(1, math.ceil(ttl))
    return seconds if seconds <= MAX_RELATIVE_EXPIRY else math.ceil(now + ttl)


def _score(text: str, seed: int = 0) -> int:
    """A rendezvous score: 32 bits of BLAKE2b (in C) of the node and key text."""
    data = text.encode() if not seed else f"{seed}:{text}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big")


class _Rendezvous(RendezvousHash):  # type: ignore[misc]  # pymemcache is untyped
    """pymemcache's rendezvous (highest random weight) hashing, with `_score`."""

    def __init__(self) -> None:
        super().__init__(hash_function=_score)

    def get_node(self, key: str) -> Any:
        nodes = self.nodes
        if len(nodes) == 1:  # the only live server wins every key: no scores to compute
            return nodes[0]
        return super().get_node(key)


class _LockedHashClient(HashClient):  # type: ignore[misc]  # pymemcache is untyped
    """``HashClient`` whose dead-server bookkeeping is serialised by one lock (network I/O stays
    outside it), and which revives each dead server ``dead_timeout`` after its own death."""

    def __init__(self, servers: list[Any], **kwargs: Any) -> None:
        self._state_lock = threading.RLock()
        super().__init__(servers, **kwargs)

    def _mark_failed_server(self, server: Any) -> None:
        with self._state_lock:
            if server in self._dead_clients:  # another thread took it out already
                return
            if self.retry_attempts > 0:
                super()._mark_failed_server(server)
            else:  # straight to dead, never visible in _failed_clients (read without a lock)
                self._dead_clients[server] = time.time()
                self.hasher.remove_node(self._make_client_key(server))

    def remove_server(self, server: Any, port: Any = None) -> None:
        with self._state_lock:
            if server not in self._dead_clients:
                super().remove_server(server, port)

    def _retry_dead(self) -> None:
        now = time.time()
        with self._state_lock:
            for server, dead_time in list(self._dead_clients.items()):
                if now - dead_time > self.dead_timeout:
                    stale = self.clients.get(self._make_client_key(server))
                    self.add_server(server)  # a fresh pool: no socket from before its death
                    del self._dead_clients[server]
                    if stale is not None:
                        stale.close()


class MemcachedBackend:
    """A memcached tier over one or more servers (see the module docstring for failures).

    ``servers``: ``"host:port"`` strings (a unix socket path works too), or one
    comma-separated string. ``timeout``/``connect_timeout``: seconds per socket operation.
    ``dead_timeout``: seconds a failed server is left out. ``retry_attempts``/``retry_timeout``:
    pymemcache's soft-retry mode (off by default). ``max_pool_size``: connections per server;
    more concurrent calls than that on one server raise ``RuntimeError``.
    """

    shared = True
    """Reachable from outside the process: encrypted when the cache has an ``encryption_key``."""

    def __init__(
        self,
        *,
        servers: Sequence[str] | str = DEFAULT_SERVERS,
        timeout: float = 0.25,
        connect_timeout: float = 0.25,
        dead_timeout: float = 30.0,
        retry_attempts: int = 0,
        retry_timeout: float = 1.0,
        max_pool_size: int = 64,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        with checking_options("MemcachedBackend"):
            specs = _parse_servers(servers)
            for name, value in [("timeout", timeout), ("connect_timeout", connect_timeout)]:
                if not value > 0:
                    raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
            if dead_timeout < 0 or retry_attempts < 0 or retry_timeout < 0:
                raise ConfigurationError("dead_timeout, retry_attempts, retry_timeout must be >= 0")
            if max_pool_size < 1 or max_value_bytes < 1:
                raise ConfigurationError("max_pool_size and max_value_bytes must be >= 1")
        self.servers = tuple(_format_server(spec) for spec in specs)
        self.max_value_bytes = max_value_bytes
        self._specs = specs
        self._client_options: dict[str, Any] = dict(
            hasher=_Rendezvous,
            timeout=timeout,
            connect_timeout=connect_timeout,
            dead_timeout=dead_timeout,
            retry_attempts=retry_attempts,
            retry_timeout=retry_timeout,
            use_pooling=True,
            max_pool_size=max_pool_size,
            ignore_exc=False,
            default_noreply=False,  # wait for each reply: a failed store must raise
            no_delay=True,
        )
        self._client = _LockedHashClient(specs, **self._client_options)
        renew_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a new client, with new pools and locks (a pooled socket
        shared with the parent would interleave their replies; a pool lock another
        thread held would never be released)."""
        abandon(self._client)
        self._client = _LockedHashClient(self._specs, **self._client_options)

    @classmethod
    def from_url(cls, location: str, **options: Any) -> MemcachedBackend:
        """Build from a URL's location part, ``"h1:11211,h2:11211"`` (empty: the default)."""
        location = location.rstrip("/")
        if location:
            if "servers" in options:
                raise ConfigurationError("memcached servers given both in the URL and as option")
            options["servers"] = location
        return cls(**options)

    def __repr__(self) -> str:
        return f"MemcachedBackend(servers={list(self.servers)!r})"

    def get(self, key: str) -> bytes | None:
        """Return the stored bytes, or ``None`` when absent or expired."""
        return cast("bytes | None", self._client.get(key))

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (rounded up to whole seconds)."""
        self._check_value(value)
        if not self._client.set(key, value, expire=_expire_arg(ttl, time.time())):
            raise MemcacheError(f"memcached did not store {key!r} (server in retry back-off)")

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` is absent (atomic); ``True`` when stored."""
        self._check_value(value)
        return bool(self._client.add(key, value, expire=_expire_arg(ttl, time.time())))

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""
        self._client.delete(key)

    def close(self) -> None:
        """Close every pooled connection; closing twice is harmless."""
        self._client.close()

    async def aget(self, key: str) -> bytes | None:
        """`get` in a worker thread, so the event loop never waits on the network."""
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        """`set` in a worker thread."""
        await asyncio.to_thread(self.set, key, value, ttl)

    async def aadd(self, key: str, value: bytes, ttl: float) -> bool:
        """`add` in a worker thread."""
        return await asyncio.to_thread(self.add, key, value, ttl)

    async def adelete(self, key: str) -> None:
        """`delete` in a worker thread."""
        await asyncio.to_thread(self.delete, key)

    async def aclose(self) -> None:
        """`close` in a worker thread."""
        await asyncio.to_thread(self.close)

    def _check_value(self, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"memcached values are bytes, got {type(value).__name__}")
        if len(value) > self.max_value_bytes:
            raise ValueError(f"{len(value)}-byte value > max_value_bytes={self.max_value_bytes}")
