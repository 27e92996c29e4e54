"""Memcached-tier hit vs pymemcache's pooled `HashClient.get` of the same stored value plus
the baseline's key, on a memcached this run starts itself on a free localhost port (the test
suite's `MemcachedServer`).

The reference is the client the memcached backend is built on -- pooled, thread-safe,
sharding -- with the key any cache must compute: the floor a cache over it can reach. A
raw single-connection `Client.get` is shown for information."""

from __future__ import annotations

from ._timing import Subject, sync_runner
from .context import Context
from .report import Row, Target, sample_row
from .workloads import MODEL, PROMPT, baseline_key, ours, upstream

__all__ = ["memcached_hit"]

SECTION = "memcached hit (tracing filtered)"


def memcached_hit(ctx: Context) -> list[Row]:
    from tests.support.memcached_servers import MemcachedServer, find_memcached

    if find_memcached() is None:
        return [Row(SECTION, "memcached tier", status="skipped: memcached not installed")]
    try:
        from pymemcache.client.base import Client
        from pymemcache.client.hash import HashClient
    except ImportError as exc:
        return [Row(SECTION, "memcached tier", status=f"skipped: {exc.name} not installed")]
    from llm_middleware import MultiLevelCache, load_backend
    from llm_middleware.keys import make_key

    with MemcachedServer() as server:
        backend = load_backend("memcached", servers=[server.address])  # by its entry point
        fn = ours(MultiLevelCache([backend], names=["L3"]))
        ctx.tracing.filtered()
        fn(PROMPT)
        key = make_key(
            f"{upstream.__module__}.{upstream.__qualname__}", {"prompt": PROMPT, "model": MODEL}
        )
        raw = Client(("127.0.0.1", server.port), no_delay=True, timeout=1.0, connect_timeout=1.0)
        hashed = HashClient([server.address], use_pooling=True, no_delay=True, timeout=1.0)
        try:
            if raw.get(key) is None:
                raise RuntimeError("the benchmark's key is not the one the library stored")
            subjects = [
                Subject("raw get", sync_runner(raw.get, key, wall=True)),
                Subject("baseline key", sync_runner(baseline_key, PROMPT, wall=True)),
                Subject("HashClient get", sync_runner(hashed.get, key, wall=True)),
                Subject("ours", sync_runner(fn, PROMPT, wall=True), ctx.tracing.filtered),
            ]
            found = ctx.measure(SECTION, subjects)
        finally:
            raw.close()
            hashed.close()
            backend.close()
    floor = found["HashClient get"].median_us + found["baseline key"].median_us
    vs = "HashClient get + key"
    return [
        sample_row(SECTION, "pymemcache HashClient.get (pooled)", found["HashClient get"]),
        sample_row(SECTION, "baseline key (JSON+blake2b)", found["baseline key"]),
        Row(SECTION, "pooled HashClient.get + baseline key", floor, ratio=1.0, vs=vs),
        sample_row(
            SECTION,
            "@cache_by_intent, memcached tier",
            found["ours"],
            against=floor,
            vs=vs,
            target=Target("<=", 1.1),
        ),
        sample_row(
            SECTION,
            "raw pymemcache Client.get (one connection, no pool)",
            found["raw get"],
            against=floor,
            vs=vs,
        ),
    ]
