"""A real server for tests: a subprocess on a free localhost port, stopped by its own pid.

`ServerProcess` holds what every such server shares: pick a free port, launch and wait until it
accepts connections, stop (kill -9) and reap it, restart it on the same port, pause (SIGSTOP)
and resume it, and use it as a context manager. A subclass (`memcached_servers`,
`redis_servers`) gives its binary's name and command line, and anything it must do once the
port accepts connections.

`require_binary` is the fixtures' check: without the binary a test is skipped, except on CI
(``CI=true``), where a missing binary fails it: CI must really run against the server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, TypeVar

__all__ = ["HOST", "START_TIMEOUT", "ServerProcess", "free_port", "require_binary"]

HOST = "127.0.0.1"
START_TIMEOUT = 5.0

_S = TypeVar("_S", bound="ServerProcess")


def free_port() -> int:
    """A port nothing listens on right now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _stopped(task: Path) -> bool:
    """Whether a ``/proc/<pid>/task/<tid>`` thread is stopped (state ``T``) or gone."""
    try:
        stat = (task / "stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


class ServerProcess:
    """One server process on ``127.0.0.1``; ``address`` is ``host:port``.

    A subclass sets `program` and `binary_env` and implements `_command`."""

    program: ClassVar[str]
    """The binary's name on ``PATH``, e.g. ``"memcached"``."""
    binary_env: ClassVar[str]
    """The environment variable that names the binary instead, e.g. ``"MEMCACHED_BIN"``."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or self.find()
        if found is None:
            raise FileNotFoundError(f"no {self.program} binary on PATH (or in {self.binary_env})")
        self.binary = found
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def find(cls) -> str | None:
        """The binary to run (``$binary_env``, else `program` on ``PATH``), or ``None``."""
        return os.environ.get(cls.binary_env) or shutil.which(cls.program)

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the process is alive (a paused one counts as running)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self: _S) -> _S:
        """Start on a free port (a few tries if another process grabs it first)."""
        self.stop()
        error: str | None = "not tried"
        for _ in range(3):
            self.port = self._free_port()
            error = self._launch()
            if error is None:
                return self
        raise RuntimeError(f"{self.program} would not start: {error}")

    def restart(self) -> None:
        """Stop if running, then start again on the same port."""
        self.stop()
        error = self._launch()
        if error is not None:
            raise RuntimeError(f"{self.program} would not restart on port {self.port}: {error}")

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
                raise RuntimeError(f"{self.program} did not stop on SIGSTOP")
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        self._signal(signal.SIGCONT)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """`pause` for the block, then `resume`."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what a subclass gives ---------------------------------------------------------------

    def _command(self) -> list[str]:
        """The command line that serves on ``HOST:self.port``."""
        raise NotImplementedError

    def _free_port(self) -> int:
        """The port `start` tries next."""
        return free_port()

    def _ready(self) -> None:
        """Called once the port accepts connections; raise if the server cannot serve."""

    def _pid_query(self) -> tuple[bytes, bytes] | None:
        """A request that makes the server say its process id, and the text before the
        id in the answer; ``None``: the server cannot say."""
        return None

    def _serving_pid(self) -> int | None:
        """The process id of whatever serves ``self.port`` (by `_pid_query`)."""
        query = self._pid_query()
        if query is None:
            return None
        request, marker = query
        with socket.create_connection((HOST, self.port), timeout=2.0) as sock:
            sock.sendall(request)
            answer = b""
            while marker not in answer or not answer.split(marker, 1)[1].split(b"\r\n", 1)[1:]:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        if marker not in answer:
            return None
        return int(answer.split(marker, 1)[1].split(b"\r\n", 1)[0])

    def _log(self) -> str:
        """The server's log, for the error when it would not start (its stderr comes first)."""
        return ""

    # -- the process -------------------------------------------------------------------------

    def _launch(self) -> str | None:
        """Run the server on ``self.port``; ``None`` once it serves, else why not."""
        proc = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.01)
                continue
            serving = self._serving_pid()
            if serving is not None and serving != proc.pid:  # another process has the port
                proc.kill()
                proc.communicate(timeout=START_TIMEOUT)
                return f"port {self.port} is served by another process (pid {serving})"
            self._proc = proc
            self._ready()
            return None
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=START_TIMEOUT)
        output = (err.decode(errors="replace") + self._log()).strip()[-2000:]
        return output or f"exit code {proc.returncode} (or no connection in {START_TIMEOUT} s)"

    def _signal(self, signum: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"{self.program} is not running")
        self._proc.send_signal(signum)


def require_binary(server: type[ServerProcess]) -> None:
    """In a fixture: skip the test when ``server``'s binary is missing (fail it on CI)."""
    import pytest  # lazily: the benchmarks run the servers without pytest

    if server.find() is not None:
        return
    message = (
        f"{server.program} binary not found (install {server.program} or set {server.binary_env})"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true, so this is an error, not a skip")
    pytest.skip(message)
