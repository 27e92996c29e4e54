"""What the backend outage tests share: counting the sockets a backend opens (to prove a
dead server is not tried again while it is left out), waiting until a backend is used
again, and threads hammering a backend while its server dies and comes back."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Protocol

import pytest

__all__ = ["SocketCounter", "hammer_through_restarts", "wait_until_usable"]


class _Backend(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float) -> None: ...


class _Server(Protocol):
    def stop(self) -> None: ...

    def restart(self) -> None: ...


class SocketCounter:
    """Counts sockets created while installed over ``socket.socket``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.created = 0
        counter = self

        class CountingSocket(socket.socket):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                counter.created += 1
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(socket, "socket", CountingSocket)


def wait_until_usable(
    backend: _Backend, key: str, down: tuple[type[BaseException], ...], within: float
) -> float:
    """Retry ``set`` until it works again (for at most ``within`` seconds, failing the
    test after that); return the ``time.monotonic()`` when it did."""
    deadline = time.monotonic() + within
    while True:
        try:
            backend.set(key, b"back", 60)
            return time.monotonic()
        except down as exc:
            error = exc
        if time.monotonic() > deadline:
            pytest.fail(f"not used again after dead_timeout: {error!r}")
        time.sleep(0.02)


def hammer_through_restarts(
    backend: _Backend, server: _Server, down: tuple[type[BaseException], ...], cycles: int
) -> list[BaseException]:
    """8 threads set and get through ``backend`` while ``server`` is killed and restarted
    ``cycles`` times; return every exception that is not one of ``down``."""
    unexpected: list[BaseException] = []
    done = threading.Event()

    def work(n: int) -> None:
        i = 0
        while not done.is_set():
            i += 1
            try:
                backend.set(f"race:{n}:{i % 20}", b"v", 60)
                assert backend.get(f"race:{n}:{i % 20}") in (b"v", None)
            except down:
                pass
            except BaseException as exc:
                unexpected.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(cycles):
        server.stop()
        time.sleep(0.1)
        server.restart()
        time.sleep(0.1)
    done.set()
    for thread in threads:
        thread.join(timeout=10)
    return unexpected
