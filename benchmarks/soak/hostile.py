"""A hostile writer: plants bad entries under live keys of the shared tier.

It finds live keys the way anyone with access to the server could (memcached's
``lru_crawler metadump``, Redis ``SCAN``), then writes one of:

- random bytes;
- a live entry truncated, or with bytes flipped in its middle;
- an oversized value (2 MiB of random bytes);
- a compression bomb: a well-formed envelope of a value that inflates to 8 MB;
- a well-formed envelope of a planted answer, signed with another secret;
- a well-formed, unsigned envelope of a planted answer.

With ``secret=`` on the soak's cache, nothing it writes may ever be served; without, the
last kind (and the bomb) are well-formed envelopes of the current schema, which the cache
cannot tell from its own (that is what signing is for), so they are counted, not gated.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from llm_middleware import MultiLevelCache, backend_from_url

from .oracle import PLANTED, Counts

__all__ = ["HostileWriter"]

_BOMB_CHARS = 8_000_000
_MAX_KEYS = 200


def _memcached_keys(address: str) -> list[str]:
    """Up to `_MAX_KEYS` live keys of one memcached server (``lru_crawler metadump all``)."""
    host, port = address.rsplit(":", 1)
    keys: list[str] = []
    with socket.create_connection((host, int(port)), timeout=0.5) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        buffer = b""
        while not buffer.endswith(b"END\r\n") and buffer.count(b"\n") < _MAX_KEYS:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    for line in buffer.split(b"\n")[:_MAX_KEYS]:
        if line.startswith(b"key="):
            keys.append(unquote(line.split(b" ", 1)[0][4:].decode()))
    return keys


class HostileWriter:
    """Plants bad entries into one shared tier, at a bounded rate, until stopped."""

    def __init__(self, url: str, counts: Counts, rng: random.Random) -> None:
        self.scheme = urlsplit(url).scheme
        self.counts = counts
        self.rng = rng
        self.backend: Any = backend_from_url(url)
        self.forger = MultiLevelCache([self.backend], names=["shared"], secret="not-the-secret")
        self.unsigned = MultiLevelCache([self.backend], names=["shared"])

    def live_keys(self, servers: list[str]) -> list[str]:
        """Keys present now in the tier's servers."""
        keys: list[str] = []
        for address in servers:
            try:
                if self.scheme == "memcached":
                    keys += _memcached_keys(address)
                else:
                    keys += self._redis_keys(address)
            except Exception:
                continue  # a server down or paused: the chaos driver's doing
        return keys

    def _redis_keys(self, address: str) -> list[str]:
        import redis

        host, port = address.rsplit(":", 1)
        client = redis.Redis(host=host, port=int(port), socket_timeout=0.5)
        try:
            _, found = client.scan(0, count=_MAX_KEYS)
            return [k.decode() if isinstance(k, bytes) else str(k) for k in found]
        finally:
            client.close()

    def plant(self, key: str) -> None:
        """Write one bad entry under ``key``; failures (a server down) are ignored."""
        rng = self.rng
        kind = rng.randrange(7)
        answer = f"{PLANTED}|{kind}|{rng.random()}"
        try:
            if kind == 0:
                self.backend.set(key, os.urandom(rng.randrange(1, 300)), 300)
            elif kind in (1, 2):
                real = self.backend.get(key)
                if not real:
                    return
                if kind == 1:
                    data = real[: rng.randrange(len(real))]
                else:
                    middle = len(real) // 2
                    data = real[:middle] + bytes([real[middle] ^ 0xFF]) + real[middle + 1 :]
                self.backend.set(key, data, 300)
            elif kind == 3:
                self.backend.set(key, os.urandom(2 * 1024 * 1024), 300)
            elif kind == 4:
                self.unsigned.set(key, PLANTED + "B" * _BOMB_CHARS, ttl=300)
            elif kind == 5:
                self.forger.set(key, answer, ttl=300)
            else:
                self.unsigned.set(key, answer, ttl=300)
        except Exception:
            return
        self.counts.bump("planted")

    def run(self, servers: list[str], stop: threading.Event, every: float = 0.05) -> None:
        """Plant under random live keys every ``every`` seconds until ``stop`` is set."""
        keys: list[str] = []
        rounds = 0
        while not stop.wait(every):
            if rounds % 20 == 0 or not keys:
                keys = self.live_keys(servers)
            rounds += 1
            if keys:
                self.plant(self.rng.choice(keys))

    def close(self) -> None:
        """Release the writer's connections."""
        self.backend.close()
