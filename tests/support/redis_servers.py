"""Real Redis servers for tests: each a subprocess on a free localhost port.

    server = RedisServer().start()
    backend = RedisBackend(url=server.url)
    server.stop()      # kill -9, by its own pid
    server.restart()   # same port, empty data (nothing is saved to disk)
    server.pause()     # SIGSTOP: a hung server (connections accepted, never answered)

``RedisServer(cluster=True)`` is a one-node Redis Cluster owning all 16,384 slots.
The binary is ``redis-server`` on ``PATH``, or the ``REDIS_SERVER_BIN`` environment variable.
The process handling is `tests.support.server_process.ServerProcess`'s.
"""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.server_process import HOST, START_TIMEOUT, ServerProcess, free_port

__all__ = ["RedisServer", "find_redis_server"]


def find_redis_server() -> str | None:
    """The redis-server binary to run, or ``None`` when there is none."""
    return RedisServer.find()


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and valid too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 < 65536:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((HOST, port + 10000))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a redis cluster node")


class RedisServer(ServerProcess):
    """One redis-server process on ``127.0.0.1`` (no persistence); ``address`` is ``host:port``."""

    program = "redis-server"
    binary_env = "REDIS_SERVER_BIN"

    def __init__(self, binary: str | None = None, *, cluster: bool = False) -> None:
        super().__init__(binary)
        self.cluster = cluster
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``"redis://127.0.0.1:PORT/0"``, as redis-py and `RedisBackend` take it."""
        return f"redis://{self.address}/0"

    def command(self, *args: Any) -> Any:
        """One command on a fresh connection (``DBSIZE``, ``KEYS *``...); raw redis-py reply."""
        import redis  # lazily: the fixtures load without redis-py

        client = redis.Redis(host=HOST, port=self.port, socket_timeout=2.0)
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _free_port(self) -> int:
        return _free_cluster_port() if self.cluster else free_port()

    def _command(self) -> list[str]:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="redis-test-")
        cmd = [self.binary, "--port", str(self.port), "--bind", HOST]
        cmd += ["--save", "", "--appendonly", "no", "--dir", self._dir.name]
        cmd += ["--logfile", "redis.log"]  # in --dir; a full stdout pipe would block the server
        if self.cluster:
            cmd += ["--cluster-enabled", "yes", "--cluster-announce-ip", HOST]
            cmd += ["--cluster-config-file", f"nodes-{self.port}.conf"]
        return cmd

    def _pid_query(self) -> tuple[bytes, bytes]:
        return b"INFO server\r\n", b"process_id:"

    def _ready(self) -> None:
        if self.cluster:
            self._assign_all_slots(time.monotonic() + START_TIMEOUT + 2.0)  # + the delay

    def _log(self) -> str:
        if self._dir is None:
            return ""
        log = Path(self._dir.name, "redis.log")
        return log.read_text() if log.exists() else ""

    def _assign_all_slots(self, deadline: float) -> None:
        """Make this node own every slot (kept across `restart` in its nodes file), then wait
        out the 2 s a restarted master stays unwritable (``CLUSTER_WRITABLE_DELAY``)."""
        if b"cluster_slots_assigned:0" in self.command("CLUSTER", "INFO"):
            self.command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        while b"cluster_state:ok" not in self.command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.02)
