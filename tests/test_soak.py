"""The chaos soak, short: memcached, Redis and Redis Cluster soaked at once while their
servers are killed, paused, failed over and restarted, and a hostile writer plants bad entries.
Nothing wrong, nothing from another namespace, nothing planted is served, and no call fails."""

from __future__ import annotations

import pytest

from benchmarks.soak import KINDS, Settings, run
from tests.support.memcached_servers import MemcachedServer
from tests.support.redis_cluster import find_redis_cli
from tests.support.redis_servers import RedisServer
from tests.support.server_process import require_binary

pytest.importorskip("openai")


@pytest.fixture
def servers_available() -> None:
    require_binary(MemcachedServer)
    require_binary(RedisServer)
    if find_redis_cli() is None:
        pytest.skip("redis-cli not found (Debian's redis-tools)")


@pytest.mark.usefixtures("servers_available")
def test_short_soak_serves_nothing_wrong_under_faults() -> None:
    """Six seconds of mixed traffic per kind, faults included: every answer is the
    uncached function's for exactly those arguments and that namespace."""
    settings = Settings(seconds=6.0, seed=7, threads=3, tasks=4, fault_every=1.5)
    figures = run(list(KINDS), settings)
    for kind, row in figures.items():
        print(kind, {k: v for k, v in row.items() if k != "examples"})
        assert row["calls"] > 100, kind
        assert row["faults"] >= 1, kind
        assert row["planted"] >= 1, kind
        assert (row["wrong"], row["cross_namespace"], row["failed"]) == (0, 0, 0), row["examples"]
        assert row["planted_served"] == 0, row["examples"]
