"""Prometheus metrics over the counters of every decorated function (extra ``prometheus``).

``register(registry=prometheus_client.REGISTRY)`` adds a collector that reads, at each
scrape, the same counters as ``fn.cache_info()`` (which ``MultiLevelCache.stats()``
sums over its functions): nothing is counted twice and a call pays nothing for it.
``start_http_server(port)`` serves them for an application without an endpoint.

Families (see docs/operations.md): ``llm_middleware_cache_calls`` {outcome, tier,
policy, function}, ``llm_middleware_cache_saved_time_seconds`` and
``llm_middleware_cache_saved_tokens`` {tier, policy, function},
``llm_middleware_cache_errors`` {tier, function}.
"""

from __future__ import annotations

import threading
import weakref
from collections import defaultdict
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .stats import function_stats

__all__ = ["CacheCollector", "register", "start_http_server"]


class CacheCollector(Collector):
    """The cache's counters as Prometheus counters, read at each scrape. Labels without
    a value (the tier of a miss, the policy of a call bypassed before one was chosen)
    are empty; counters of functions sharing a name are added up."""

    def collect(self) -> Iterator[Metric]:
        calls: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        saved: defaultdict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        for stats in function_stats():
            function = stats.function or ""
            for (outcome, tier, policy), counted in stats.calls().items():
                calls[(outcome, tier or "", policy or "", function)] += counted.calls
                if outcome == "hit":
                    into = saved[(tier or "", policy or "", function)]
                    into[0] += counted.saved_ms / 1000.0
                    into[1] += counted.saved_tokens
            for tier, count in stats.snapshot()["errors"].items():
                errors[(tier, function)] += count
        family = CounterMetricFamily(
            "llm_middleware_cache_calls",
            "Calls through @cache_by_intent, by outcome (hit, miss, bypass), the tier that "
            "answered a hit, policy and function.",
            labels=["outcome", "tier", "policy", "function"],
        )
        for labels, count in sorted(calls.items()):
            family.add_metric(labels, count)
        yield family
        seconds = CounterMetricFamily(
            "llm_middleware_cache_saved_time_seconds",
            "Time hits saved: what the answered calls had taken, in seconds.",
            labels=["tier", "policy", "function"],
            unit="seconds",
        )
        tokens = CounterMetricFamily(
            "llm_middleware_cache_saved_tokens",
            "Tokens hits saved: the total_tokens of the answered calls' usage.",
            labels=["tier", "policy", "function"],
        )
        for hit_labels, (spent, spent_tokens) in sorted(saved.items()):
            seconds.add_metric(hit_labels, spent)
            tokens.add_metric(hit_labels, spent_tokens)
        yield seconds
        yield tokens
        failures = CounterMetricFamily(
            "llm_middleware_cache_errors",
            "Tier operations that failed (the call went on without that tier).",
            labels=["tier", "function"],
        )
        for tier_labels, count in sorted(errors.items()):
            failures.add_metric(tier_labels, count)
        yield failures


_registered: weakref.WeakKeyDictionary[CollectorRegistry, CacheCollector] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def register(registry: CollectorRegistry = prometheus_client.REGISTRY) -> CacheCollector:
    """Register the cache's collector with ``registry`` (once: registering again
    returns the collector already there)."""
    with _lock:
        collector = _registered.get(registry)
        if collector is None:
            collector = CacheCollector()
            registry.register(collector)
            _registered[registry] = collector
        return collector


def start_http_server(
    port: int,
    addr: str = "0.0.0.0",
    registry: CollectorRegistry = prometheus_client.REGISTRY,
) -> tuple[WSGIServer, threading.Thread]:
    """Register the collector with ``registry`` and serve it (and whatever else is
    registered there) at ``http://addr:port/metrics`` from a daemon thread, as
    ``prometheus_client.start_http_server`` does. ``port=0`` picks a free port:
    ``server.server_port``. Call ``server.shutdown()`` to stop."""
    register(registry)
    return prometheus_client.start_http_server(port, addr=addr, registry=registry)
