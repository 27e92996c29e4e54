"""The ``memcached_server`` / ``memcached_servers`` pytest fixtures: real servers per test.

Without a memcached binary the tests are skipped, except on CI (``CI=true``), where a missing
binary fails them: CI must really run against memcached.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.memcached_servers import MemcachedServer, find_memcached


def _require_memcached() -> None:
    if find_memcached() is not None:
        return
    message = "memcached binary not found (install memcached or set MEMCACHED_BIN)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true, so this is an error, not a skip")
    pytest.skip(message)


@pytest.fixture
def memcached_server() -> Iterator[MemcachedServer]:
    """One running memcached server, stopped after the test."""
    _require_memcached()
    with MemcachedServer() as server:
        yield server


@pytest.fixture
def memcached_servers() -> Iterator[list[MemcachedServer]]:
    """Two running memcached servers (for sharding), both stopped after the test."""
    _require_memcached()
    servers: list[MemcachedServer] = []
    try:
        for _ in range(2):
            servers.append(MemcachedServer().start())
        yield servers
    finally:
        for server in servers:
            server.stop()
