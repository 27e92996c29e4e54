"""The shared tiers a soak runs over, and the faults injected into them.

Each kind starts its own servers on free loopback ports (the test suite's server fixtures)
and knows how to fault one of them:

- ``memcached``: a pool of three servers; one at a time is killed (SIGKILL) and restarted
  empty, or paused (SIGSTOP) and resumed;
- ``redis``: one server, killed and restarted empty, or paused and resumed;
- ``redis-cluster``: three masters with a replica each; a master is killed, its replica is
  promoted (failover), and the killed node is started again and rejoins as a replica; or a
  node is paused for less than the cluster's node timeout.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["KINDS", "Fault", "SharedServers", "start_servers"]

KINDS = ("memcached", "redis", "redis-cluster")

TIER_TIMEOUT_S = 0.25
"""The socket timeout the soak gives each shared tier (the backends' default)."""
DEAD_TIMEOUT_S = 1.0
"""How long a failed server is skipped before one call probes it again."""


class Fault:
    """One injected fault: what, on which server, and when the server was back."""

    __slots__ = ("action", "ended", "started", "target")

    def __init__(self, action: str, target: str) -> None:
        self.action, self.target = action, target
        self.started = time.monotonic()
        self.ended: float | None = None


class SharedServers(Protocol):
    """The servers of one kind, as the soak drives them."""

    url: str
    """The tier's ``backend_from_url`` URL."""

    def fault(self, rng: random.Random, stop: threading.Event) -> Fault:
        """Inject one fault and repair it (blocking); returns it with its times."""

    def close(self) -> None:
        """Stop every server."""


class _Pool:
    """Several independent servers (memcached's pool, or one redis)."""

    def __init__(self, servers: list[Any], url: Callable[[list[Any]], str]) -> None:
        self.servers = [server.start() for server in servers]
        self.url = url(self.servers)

    def fault(self, rng: random.Random, stop: threading.Event) -> Fault:
        server = rng.choice(self.servers)
        if rng.random() < 0.5:
            fault = Fault("kill", server.address)
            server.stop()
            stop.wait(rng.uniform(0.2, 1.0))
            server.restart()
        else:
            fault = Fault("pause", server.address)
            server.pause()
            stop.wait(rng.uniform(0.2, 0.8))
            server.resume()
        fault.ended = time.monotonic()
        return fault

    def close(self) -> None:
        for server in self.servers:
            server.stop()


class _Cluster:
    """Redis Cluster: failover of a killed master, then its rejoin as a replica."""

    def __init__(self) -> None:
        from tests.support.redis_cluster import RedisClusterServers

        self.cluster = RedisClusterServers().__enter__()
        self.failovers = 0
        options = f"socket_timeout={TIER_TIMEOUT_S}&socket_connect_timeout={TIER_TIMEOUT_S}"
        self.url = f"{self.cluster.url}?{options}&dead_timeout={DEAD_TIMEOUT_S}"

    def fault(self, rng: random.Random, stop: threading.Event) -> Fault:
        if self.failovers == 0 or rng.random() < 0.6:  # the first fault is always a failover
            self.failovers += 1
            master = rng.choice(self.cluster.masters())
            fault = Fault("failover", master.address)
            self.cluster.fail_over(master)
            self.cluster.rejoin(master)
        else:
            node = rng.choice([n for n in self.cluster.nodes if n.running])
            fault = Fault("pause", node.address)
            node.pause()
            stop.wait(rng.uniform(0.2, 0.6))  # under the node timeout: no failover
            node.resume()
        fault.ended = time.monotonic()
        return fault

    def close(self) -> None:
        self.cluster.stop()


def start_servers(kind: str) -> SharedServers:
    """Start the servers of ``kind`` (one of `KINDS`)."""
    if kind == "memcached":
        from tests.support.memcached_servers import MemcachedServer

        def memcached_url(servers: list[Any]) -> str:
            hosts = ",".join(s.address for s in servers)
            timeouts = f"timeout={TIER_TIMEOUT_S}&connect_timeout={TIER_TIMEOUT_S}"
            return f"memcached://{hosts}?{timeouts}&dead_timeout={DEAD_TIMEOUT_S}"

        return _Pool([MemcachedServer() for _ in range(3)], memcached_url)
    if kind == "redis":
        from tests.support.redis_servers import RedisServer

        def redis_url(servers: list[Any]) -> str:
            timeouts = f"socket_timeout={TIER_TIMEOUT_S}&socket_connect_timeout={TIER_TIMEOUT_S}"
            return f"{servers[0].url}?{timeouts}&dead_timeout={DEAD_TIMEOUT_S}"

        return _Pool([RedisServer()], redis_url)
    if kind == "redis-cluster":
        return _Cluster()
    raise ValueError(f"unknown shared-tier kind {kind!r}; choose from {', '.join(KINDS)}")
