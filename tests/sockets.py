"""Counting the sockets a backend opens: how the outage tests prove a dead server is not
tried again while it is left out."""

from __future__ import annotations

import socket
from typing import Any

import pytest

__all__ = ["SocketCounter"]


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
