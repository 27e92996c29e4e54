"""Real memcached servers for tests: each a subprocess on a free localhost port.

    server = MemcachedServer().start()
    backend = MemcachedBackend(servers=[server.address])
    server.stop()      # kill -9, by its own pid
    server.restart()   # same port, empty cache
    server.pause()     # SIGSTOP: a hung server (connections accepted, never answered)

The binary is ``memcached`` on ``PATH``, or the ``MEMCACHED_BIN`` environment variable.
The process handling is `tests.support.server_process.ServerProcess`'s.
"""

from __future__ import annotations

import os
from typing import Any

from tests.support.server_process import HOST, ServerProcess

__all__ = ["MemcachedServer", "find_memcached"]


def find_memcached() -> str | None:
    """The memcached binary to run, or ``None`` when there is none."""
    return MemcachedServer.find()


class MemcachedServer(ServerProcess):
    """One memcached process (64 MiB, TCP only) on ``127.0.0.1``; ``address`` is ``host:port``,
    as `MemcachedBackend` takes it. `restart` starts with an empty cache."""

    program = "memcached"
    binary_env = "MEMCACHED_BIN"

    def stats(self) -> dict[str, Any]:
        """The server's ``stats`` (``curr_items``, ``total_connections``...), names as str."""
        from pymemcache.client.base import Client  # lazily: the fixtures load without it

        client = Client((HOST, self.port), connect_timeout=1.0, timeout=1.0)
        try:
            return {k.decode(): v for k, v in client.stats().items()}
        finally:
            client.close()

    def _pid_query(self) -> tuple[bytes, bytes]:
        return b"stats\r\n", b"STAT pid "

    def _command(self) -> list[str]:
        cmd = [self.binary, "-l", HOST, "-p", str(self.port), "-U", "0", "-m", "64", "-t", "2"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd += ["-u", "root"]  # memcached refuses to run as root without -u
        return cmd
