"""The real servers the tests start: a server is never taken to be ours when another
process serves its port (the other one would answer, and ours would be gone)."""

from __future__ import annotations

from tests.support.memcached_servers import MemcachedServer


def test_a_port_served_by_another_process_is_not_taken_for_ours(
    memcached_server: MemcachedServer,
) -> None:
    second = MemcachedServer()
    second.port = memcached_server.port  # as if a free port had been taken meanwhile
    error = second._launch()
    assert error is not None and "served by another process" in error
    assert not second.running
    assert second.start().port != memcached_server.port  # start moves on to another port
    second.stop()
