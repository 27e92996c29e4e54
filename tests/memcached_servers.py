"""Real memcached servers for tests: each a subprocess on a free localhost port.

    server = MemcachedServer().start()
    backend = MemcachedBackend(servers=[server.address])
    server.stop()      # kill -9, by its own pid
    server.restart()   # same port, empty cache
    server.pause()     # SIGSTOP: a hung server (connections accepted, never answered)

The binary is ``memcached`` on ``PATH``, or the ``MEMCACHED_BIN`` environment variable.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = ["MemcachedServer", "find_memcached"]

START_TIMEOUT = 5.0


def find_memcached() -> str | None:
    """The memcached binary to run, or ``None`` when there is none."""
    return os.environ.get("MEMCACHED_BIN") or shutil.which("memcached")


def _stopped(task: Path) -> bool:
    """Whether a ``/proc/<pid>/task/<tid>`` thread is stopped (state ``T``) or gone."""
    try:
        stat = (task / "stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MemcachedServer:
    """One memcached process (64 MiB, TCP only) on ``127.0.0.1``; ``address`` is ``host:port``."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or find_memcached()
        if found is None:
            raise FileNotFoundError("no memcached binary on PATH (or in MEMCACHED_BIN)")
        self.binary = found
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``, as `MemcachedBackend` takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the process is alive (a paused one counts as running)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> MemcachedServer:
        """Start on a free port (a few tries if another process grabs it first)."""
        self.stop()
        error: str | None = "not tried"
        for _ in range(3):
            self.port = _free_port()
            error = self._launch()
            if error is None:
                return self
        raise RuntimeError(f"memcached would not start: {error}")

    def restart(self) -> None:
        """Stop if running, then start again on the same port (the cache starts empty)."""
        self.stop()
        error = self._launch()
        if error is not None:
            raise RuntimeError(f"memcached would not restart on port {self.port}: {error}")

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
        """SIGSTOP: the kernel still accepts connections, but nothing is ever answered.

        Returns once every thread is stopped (read from ``/proc`` where there is one), so no
        request sent afterwards can still be answered."""
        self._signal(signal.SIGSTOP)
        assert self._proc is not None
        tasks = Path(f"/proc/{self._proc.pid}/task")
        if not tasks.is_dir():
            time.sleep(0.1)
            return
        deadline = time.monotonic() + START_TIMEOUT
        while not all(_stopped(task) for task in tasks.iterdir()):
            if time.monotonic() > deadline:
                raise RuntimeError("memcached did not stop on SIGSTOP")
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        self._signal(signal.SIGCONT)

    def stats(self) -> dict[str, Any]:
        """The server's ``stats`` (``curr_items``, ``total_connections``...), names as str."""
        from pymemcache.client.base import Client  # lazily: the fixtures load without it

        client = Client(("127.0.0.1", self.port), connect_timeout=1.0, timeout=1.0)
        try:
            return {k.decode(): v for k, v in client.stats().items()}
        finally:
            client.close()

    def __enter__(self) -> MemcachedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _launch(self) -> str | None:
        """Run memcached on ``self.port``; ``None`` once it accepts connections, else why not."""
        cmd = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64"]
        cmd += ["-t", "2"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd += ["-u", "root"]  # memcached refuses to run as root without -u
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.01)
                continue
            self._proc = proc
            return None
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=START_TIMEOUT)
        assert proc.stderr is not None
        output = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        return output or f"exit code {proc.returncode} (or no connection in {START_TIMEOUT} s)"

    def _signal(self, signum: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("memcached is not running")
        self._proc.send_signal(signum)
