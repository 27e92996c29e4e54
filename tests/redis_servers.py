"""Real Redis servers for tests: each a subprocess on a free localhost port.

    server = RedisServer().start()
    backend = RedisBackend(url=server.url)
    server.stop()      # kill -9, by its own pid
    server.restart()   # same port, empty data (nothing is saved to disk)
    server.pause()     # SIGSTOP: a hung server (connections accepted, never answered)

``RedisServer(cluster=True)`` is a one-node Redis Cluster owning all 16,384 slots.
The binary is ``redis-server`` on ``PATH``, or the ``REDIS_SERVER_BIN`` environment variable.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.memcached_servers import _free_port, _stopped

__all__ = ["RedisServer", "find_redis_server"]

START_TIMEOUT = 5.0


def find_redis_server() -> str | None:
    """The redis-server binary to run, or ``None`` when there is none."""
    return os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and valid too."""
    for _ in range(100):
        port = _free_port()
        if port + 10000 < 65536:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a redis cluster node")


class RedisServer:
    """One redis-server process on ``127.0.0.1`` (no persistence); ``address`` is ``host:port``."""

    def __init__(self, binary: str | None = None, *, cluster: bool = False) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise FileNotFoundError("no redis-server binary on PATH (or in REDIS_SERVER_BIN)")
        self.binary = found
        self.cluster = cluster
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``"redis://127.0.0.1:PORT/0"``, as redis-py and `RedisBackend` take it."""
        return f"redis://{self.address}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive (a paused one counts as running)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServer:
        """Start on a free port (a few tries if another process grabs it first)."""
        self.stop()
        error: str | None = "not tried"
        for _ in range(3):
            self.port = _free_cluster_port() if self.cluster else _free_port()
            error = self._launch()
            if error is None:
                return self
        raise RuntimeError(f"redis-server would not start: {error}")

    def restart(self) -> None:
        """Stop if running, then start again on the same port."""
        self.stop()
        error = self._launch()
        if error is not None:
            raise RuntimeError(f"redis-server would not restart on port {self.port}: {error}")

    def stop(self) -> None:
        """Kill the process (its own pid only) and reap it; a no-op when not running."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=START_TIMEOUT)
        if proc.stderr is not None:
            proc.stderr.close()

    def pause(self) -> None:
        """SIGSTOP; returns once every thread of the server is stopped."""
        self._signal(signal.SIGSTOP)
        assert self._proc is not None
        tasks = Path(f"/proc/{self._proc.pid}/task")
        if not tasks.is_dir():
            time.sleep(0.1)
            return
        deadline = time.monotonic() + START_TIMEOUT
        while not all(_stopped(task) for task in tasks.iterdir()):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not stop on SIGSTOP")
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        self._signal(signal.SIGCONT)

    def command(self, *args: Any) -> Any:
        """One command on a fresh connection (``DBSIZE``, ``KEYS *``...); raw redis-py reply."""
        import redis  # lazily: the fixtures load without redis-py

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2.0)
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _launch(self) -> str | None:
        """Run redis-server on ``self.port``; ``None`` once it serves, else why not."""
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="redis-test-")
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", self._dir.name]
        cmd += ["--logfile", "redis.log"]  # in --dir; a full stdout pipe would block the server
        if self.cluster:
            cmd += ["--cluster-enabled", "yes", "--cluster-announce-ip", "127.0.0.1"]
            cmd += ["--cluster-config-file", f"nodes-{self.port}.conf"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.01)
                continue
            self._proc = proc
            if self.cluster:
                self._assign_all_slots(time.monotonic() + START_TIMEOUT + 2.0)  # + the delay
            return None
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=START_TIMEOUT)
        log = Path(self._dir.name, "redis.log")
        text = (err.decode(errors="replace") + (log.read_text() if log.exists() else ""))[-2000:]
        return text or f"exit code {proc.returncode} (or no connection in {START_TIMEOUT} s)"

    def _assign_all_slots(self, deadline: float) -> None:
        """Make this node own every slot (kept across `restart` in its nodes file), then wait
        out the 2 s a restarted master stays unwritable (``CLUSTER_WRITABLE_DELAY``)."""
        if b"cluster_slots_assigned:0" in self.command("CLUSTER", "INFO"):
            self.command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        while b"cluster_state:ok" not in self.command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.02)

    def _signal(self, signum: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("redis-server is not running")
        self._proc.send_signal(signum)
