"""A real Redis Cluster for tests and the soak: three masters with one replica each.

    with RedisClusterServers() as cluster:
        backend = backend_from_url(cluster.url)    # redis+cluster://127.0.0.1:PORT
        node = cluster.masters()[0]
        cluster.fail_over(node)        # SIGKILL a master, wait until its replica is promoted
        cluster.rejoin(node)           # start it again: it comes back as a replica

Six ``redis-server --cluster-enabled yes`` processes on free loopback ports (each with its
cluster bus port + 10000 free), joined by ``redis-cli --cluster create ... --cluster-replicas 1``.
``cluster-node-timeout`` is short (1 s) so a failover takes about two seconds, and
``cluster-require-full-coverage no`` keeps the other masters' slots serving while one is down.
The binaries are ``redis-server`` and ``redis-cli`` on ``PATH`` (Debian's ``redis-server``
package ships both).
"""

from __future__ import annotations

import shutil
import subprocess
import time

from tests.support.redis_servers import RedisServer

__all__ = ["ClusterNode", "RedisClusterServers", "find_redis_cli"]

NODE_TIMEOUT_MS = 1000
"""How long a master may be unreachable before its replica takes over."""


def find_redis_cli() -> str | None:
    """The redis-cli binary, or ``None``."""
    return shutil.which("redis-cli")


class ClusterNode(RedisServer):
    """One node of a multi-node cluster: cluster mode on, no slots of its own at start
    (``redis-cli --cluster create`` assigns them), its nodes file kept across restarts."""

    def __init__(self, binary: str | None = None) -> None:
        super().__init__(binary, cluster=True)

    def _command(self) -> list[str]:
        return [
            *super()._command(),
            *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
            *("--cluster-require-full-coverage", "no"),
            *("--cluster-allow-reads-when-down", "no"),
            *("--repl-diskless-sync-delay", "0"),  # a (re)joining replica syncs at once, not in 5 s
        ]

    def _ready(self) -> None:
        """Nothing to assign: the cluster is made (or remembered) as a whole."""

    def info(self, section: str = "replication") -> str:
        """``INFO section`` as text."""
        reply = self.command("INFO", section)
        if isinstance(reply, dict):
            return "\n".join(f"{k}:{v}" for k, v in reply.items())
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    @property
    def is_master(self) -> bool:
        """Whether the node serves as a master now."""
        return "role:master" in self.info()


class RedisClusterServers:
    """Three masters and three replicas on loopback, joined into one cluster."""

    def __init__(self, *, masters: int = 3) -> None:
        cli = find_redis_cli()
        if cli is None:
            raise FileNotFoundError("no redis-cli binary on PATH")
        self.cli = cli
        self.nodes = [ClusterNode() for _ in range(masters * 2)]

    @property
    def url(self) -> str:
        """``redis+cluster://`` URL of the first node (the client learns the rest)."""
        return f"redis+cluster://{self.nodes[0].address}/0"

    @property
    def urls(self) -> list[str]:
        """Every node's ``host:port``."""
        return [node.address for node in self.nodes]

    def start(self) -> RedisClusterServers:
        """Start the six processes and create the cluster; returns once every slot is
        served and every replica is attached to its master."""
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *self.urls,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.wait_healthy()
        return self

    def stop(self) -> None:
        """Kill every node and remove its files."""
        for node in self.nodes:
            node.__exit__(None, None, None)

    def __enter__(self) -> RedisClusterServers:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def masters(self) -> list[ClusterNode]:
        """The running nodes that serve as masters now."""
        return [node for node in self.nodes if node.running and node.is_master]

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Until every running node says ``cluster_state:ok`` and three masters have a
        replica each (the cluster has healed after a failover and a rejoin)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states_ok = all(
                    b"cluster_state:ok" in node.command("CLUSTER", "INFO")
                    for node in self.nodes
                    if node.running
                )
                linked = sum(
                    "master_link_status:up" in node.info()
                    for node in self.nodes
                    if node.running and not node.is_master
                )
            except Exception:
                states_ok, linked = False, 0
            if states_ok and linked == len(self.nodes) // 2:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the redis cluster did not become healthy")
            time.sleep(0.05)

    def fail_over(self, node: ClusterNode, timeout: float = 15.0) -> ClusterNode:
        """SIGKILL master ``node`` and wait until one of the others is promoted in its place;
        returns the promoted node."""
        before = {n.port for n in self.masters()}
        node.stop()
        deadline = time.monotonic() + timeout
        while True:
            for other in self.nodes:
                if other.running and other.port not in before and other.is_master:
                    info = other.command("CLUSTER", "INFO")
                    if b"cluster_state:ok" in info:
                        return other
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over from {node.address}")
            time.sleep(0.05)

    def rejoin(self, node: ClusterNode, timeout: float = 15.0) -> None:
        """Start a killed node again on its port, with its nodes file: it learns it was
        failed over and serves as a replica of the promoted master."""
        node.restart()
        deadline = time.monotonic() + timeout
        while "master_link_status:up" not in node.info():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.address} did not rejoin as a replica")
            time.sleep(0.05)

    def pause(self, node: ClusterNode) -> None:
        """SIGSTOP ``node`` (shorter than the node timeout: no failover)."""
        node.pause()

    def resume(self, node: ClusterNode) -> None:
        """SIGCONT after `pause`."""
        node.resume()
