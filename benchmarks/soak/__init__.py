"""A chaos soak over real servers: does any call fail, hang, or get someone else's answer?

For each shared-tier kind (`servers.KINDS`), the soak starts its servers on loopback, then
for ``seconds``:

- worker threads and asyncio tasks call the decorated functions of `workload.Workload`
  (all four policies, 100 namespaces, multi-turn conversations, streamed OpenAI calls);
- a chaos driver faults the servers at random, seeded intervals (`servers`);
- a hostile writer plants bad entries under live keys (`hostile.HostileWriter`);
- a monitor samples the shared tier's hits, to time how long hits take to come back after
  each fault.

Every answer is judged by the `oracle.Oracle`. `run` returns the figures per kind; the loops
are bounded in time and in count and stop by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from .hostile import HostileWriter
from .oracle import Counts
from .servers import DEAD_TIMEOUT_S, KINDS, TIER_TIMEOUT_S, Fault, start_servers
from .workload import CALL_S, Workload

__all__ = ["KINDS", "SLOW_MARGIN_S", "Settings", "run", "run_kind"]

SLOW_MARGIN_S = 0.5
"""A call is slow when it takes longer than the tier timeout, plus the call itself, plus
this margin."""
MAX_CALLS_PER_WORKER = 200_000


@dataclass(frozen=True)
class Settings:
    """How a soak runs."""

    seconds: float = 120.0
    seed: int = 1
    threads: int = 4
    tasks: int = 6
    fault_every: float = 2.0
    signed: bool = True

    @property
    def slow_after(self) -> float:
        return TIER_TIMEOUT_S + CALL_S + SLOW_MARGIN_S


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Drop the cache's events below ERROR while the soak runs (thousands of expected
    ``cache.error`` warnings while servers are down); the previous set-up is restored."""
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        yield
    finally:
        structlog.configure(**before)


def run(kinds: list[str], settings: Settings) -> dict[str, dict[str, Any]]:
    """Soak the kinds at the same time (each its own servers, cache and workers); the
    figures per kind."""
    figures: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def soak(kind: str) -> None:
        try:
            figures[kind] = run_kind(kind, settings)
        except BaseException as exc:
            errors.append(exc)

    with quiet():
        threads = [threading.Thread(target=soak, args=(kind,)) for kind in kinds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return {kind: figures[kind] for kind in kinds}


def run_kind(kind: str, settings: Settings) -> dict[str, Any]:
    """Soak one shared-tier kind for ``settings.seconds``; its figures."""
    from tests.support.fake_openai import FakeOpenAIServer

    counts = Counts()
    rng = random.Random(f"{settings.seed}-{kind}")
    servers = start_servers(kind)
    llm = FakeOpenAIServer().start()
    secret = "soak-secret" if settings.signed else None
    workload = Workload(kind, servers.url, counts, secret=secret, openai_url=llm.base_url)
    hostile = HostileWriter(servers.url, counts, random.Random(rng.random()))
    addresses = _addresses(servers)
    stop = threading.Event()
    faults: list[Fault] = []
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + settings.seconds
    chaos_until = deadline - min(5.0, settings.seconds / 4)  # the last stretch runs healthy
    threads = [
        threading.Thread(target=_worker, args=(workload, settings, i, deadline), daemon=True)
        for i in range(settings.threads)
    ]
    threads.append(
        threading.Thread(target=_tasks, args=(workload, settings, deadline), daemon=True)
    )
    side = [
        threading.Thread(
            target=_chaos,
            args=(servers, settings, random.Random(rng.random()), chaos_until, stop, faults),
            daemon=True,
        ),
        threading.Thread(target=hostile.run, args=(addresses, stop), daemon=True),
        threading.Thread(target=_monitor, args=(workload, stop, samples), daemon=True),
    ]
    started = time.monotonic()
    try:
        for thread in threads + side:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 30.0)
            if thread.is_alive():
                counts.bump("failed")  # a hung caller
                counts.note(f"{thread.name} still running 30 s after the deadline")
    finally:
        stop.set()
        for thread in side:
            thread.join(timeout=60.0)
        hostile.close()
        workload.close()
        llm.stop()
        servers.close()
    counts.faults = len(faults)
    counts.recoveries = _recoveries(faults, samples)
    return _figures(counts, settings, time.monotonic() - started)


def _addresses(servers: Any) -> list[str]:
    if hasattr(servers, "cluster"):
        return list(servers.cluster.urls)
    return [str(s.address) for s in servers.servers]


def _check(counts: Counts, settings: Settings, started: float) -> None:
    if time.monotonic() - started > settings.slow_after:
        counts.bump("slow")


def _worker(workload: Workload, settings: Settings, index: int, deadline: float) -> None:
    rng = random.Random(f"{settings.seed}-{workload.name}-thread-{index}")
    counts = workload.counts
    opening = {"role": "user", "content": f"Explain the definition of topic {index}."}
    conversation = [dict(opening)]
    for _ in range(MAX_CALLS_PER_WORKER):
        if time.monotonic() >= deadline:
            return
        started = time.monotonic()
        try:
            workload.call_sync(rng, conversation)
        except Exception as exc:
            counts.bump("failed")
            counts.note(f"sync call raised {exc!r}")
            conversation[1:] = []
        counts.bump("calls")
        _check(counts, settings, started)


def _tasks(workload: Workload, settings: Settings, deadline: float) -> None:
    async def task(index: int) -> None:
        rng = random.Random(f"{settings.seed}-{workload.name}-task-{index}")
        counts = workload.counts
        for _ in range(MAX_CALLS_PER_WORKER):
            if time.monotonic() >= deadline:
                return
            started = time.monotonic()
            try:
                await asyncio.wait_for(workload.call_async(rng), timeout=30.0)
            except Exception as exc:
                counts.bump("failed")
                counts.note(f"async call raised {exc!r}")
            counts.bump("calls")
            _check(counts, settings, started)

    async def main() -> None:
        try:
            await asyncio.gather(*(task(i) for i in range(settings.tasks)))
        finally:
            await workload.openai.aclose()

    asyncio.run(main())


def _chaos(
    servers: Any,
    settings: Settings,
    rng: random.Random,
    until: float,
    stop: threading.Event,
    faults: list[Fault],
) -> None:
    while not stop.wait(rng.uniform(0.5, 1.5) * settings.fault_every):
        if time.monotonic() >= until:
            return
        faults.append(servers.fault(rng, stop))


def _monitor(workload: Workload, stop: threading.Event, samples: list[tuple[float, int]]) -> None:
    while not stop.wait(0.05):
        hits = workload.cache.stats()["hits"].get("L3", 0)
        samples.append((time.monotonic(), hits))


def _recoveries(faults: list[Fault], samples: list[tuple[float, int]]) -> list[float]:
    """For each fault, seconds from the server being back to the shared tier's next hit."""
    found = []
    for fault in faults:
        if fault.ended is None:
            continue
        before = [hits for when, hits in samples if when <= fault.ended]
        if not before:
            continue
        after = [when for when, hits in samples if when > fault.ended and hits > before[-1]]
        if after:
            found.append(after[0] - fault.ended)
    return found


def _figures(counts: Counts, settings: Settings, elapsed: float) -> dict[str, Any]:
    recoveries = counts.recoveries
    return {
        "calls": counts.calls,
        "faults": counts.faults,
        "wrong": counts.wrong,
        "cross_namespace": counts.cross_namespace,
        "failed": counts.failed,
        "planted": counts.planted,
        "planted_served": counts.planted_served,
        "slow": counts.slow,
        "slow_after_s": round(settings.slow_after, 3),
        "recovery_s": round(statistics.median(recoveries), 3) if recoveries else None,
        "recovery_max_s": round(max(recoveries), 3) if recoveries else None,
        "signed": settings.signed,
        "seconds": round(elapsed, 1),
        "dead_timeout_s": DEAD_TIMEOUT_S,
        "examples": counts.examples,
    }
