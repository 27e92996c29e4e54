"""The ``memcached_server`` / ``memcached_servers`` pytest fixtures: real servers per test.

Without a memcached binary the tests are skipped, except on CI (``CI=true``), where a missing
binary fails them: CI must really run against memcached.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.memcached_servers import MemcachedServer
from tests.support.server_process import require_binary


@pytest.fixture
def memcached_server() -> Iterator[MemcachedServer]:
    """One running memcached server, stopped after the test."""
    require_binary(MemcachedServer)
    with MemcachedServer() as server:
        yield server


@pytest.fixture
def memcached_servers() -> Iterator[list[MemcachedServer]]:
    """Two running memcached servers (for sharding), both stopped after the test."""
    require_binary(MemcachedServer)
    servers: list[MemcachedServer] = []
    try:
        for _ in range(2):
            servers.append(MemcachedServer().start())
        yield servers
    finally:
        for server in servers:
            server.stop()
