"""The ``redis_server`` (per test) and ``redis_cluster`` (per module) pytest fixtures.

A one-node cluster takes about 2 s to start (and to restart): Redis keeps a master's
``cluster_state`` at ``fail`` for 2 s after startup (``CLUSTER_WRITABLE_DELAY``). So a test
module shares one; each test flushes it, and a test that stops it restarts it.

Without a redis-server binary the tests are skipped, except on CI (``CI=true``), where a
missing binary fails them: CI must really run against Redis.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.redis_servers import RedisServer, find_redis_server


def _require_redis_server() -> None:
    if find_redis_server() is not None:
        return
    message = "redis-server binary not found (install redis-server or set REDIS_SERVER_BIN)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true, so this is an error, not a skip")
    pytest.skip(message)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """One running redis-server, stopped after the test."""
    _require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisServer]:
    """A one-node Redis Cluster (all slots on one server) for a whole test module."""
    _require_redis_server()
    with RedisServer(cluster=True) as server:
        yield server
