"""The ``redis_server`` (per test) and ``redis_cluster`` (per module) pytest fixtures.

A one-node cluster takes about 2 s to start (and to restart): Redis keeps a master's
``cluster_state`` at ``fail`` for 2 s after startup (``CLUSTER_WRITABLE_DELAY``). So a test
module shares one; each test flushes it, and a test that stops it restarts it.

Without a redis-server binary the tests are skipped, except on CI (``CI=true``), where a
missing binary fails them: CI must really run against Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_servers import RedisServer
from tests.support.server_process import require_binary


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """One running redis-server, stopped after the test."""
    require_binary(RedisServer)
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisServer]:
    """A one-node Redis Cluster (all slots on one server) for a whole test module."""
    require_binary(RedisServer)
    with RedisServer(cluster=True) as server:
        yield server
