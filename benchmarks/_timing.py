"""The measurement helper: interleaved rounds of many iterations, timed with perf_counter_ns.

A `Subject` is something to time: ``run(n)`` performs the operation ``n`` times and returns
the elapsed nanoseconds (so a loop's own set-up stays outside the timing). `measure`
calibrates each subject's iteration count to a round length, then runs every subject once
per round, rotating the order each round, so noise on a busy machine hits the baseline and
its subjects alike. The result per subject is the per-operation time of every round; the
figures are their median (and minimum).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Sample",
    "Settings",
    "Subject",
    "async_runner",
    "clock",
    "measure",
    "sync_runner",
    "use_cpu_clock",
]

Runner = Callable[[int], int]
Clock = Callable[[], int]

_clock: Clock = time.perf_counter_ns


def use_cpu_clock(enabled: bool) -> None:
    """Time in-process subjects by this thread's CPU time (``time.thread_time_ns``) instead
    of the wall clock: on a machine shared with other busy processes, time spent
    descheduled then stops counting. Subjects that wait on I/O pass ``clock=`` explicitly."""
    global _clock
    _clock = time.thread_time_ns if enabled else time.perf_counter_ns


def clock() -> Clock:
    """The clock in-process subjects are timed with (see `use_cpu_clock`)."""
    return _clock


@dataclass(frozen=True)
class Settings:
    """How long to measure: ``rounds`` rounds of about ``round_ms`` per subject."""

    rounds: int
    round_ms: float
    warmup: int = 3


@dataclass
class Subject:
    """One thing to time. ``setup`` and ``teardown`` (untimed) run before and after each of
    its rounds, e.g. to switch the structlog configuration the subject needs."""

    name: str
    run: Runner
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None


@dataclass
class Sample:
    """Per-operation times (ns) of one subject, one entry per round."""

    name: str
    per_op_ns: list[float] = field(default_factory=list)
    iterations: int = 0

    @property
    def median_us(self) -> float:
        return statistics.median(self.per_op_ns) / 1000

    @property
    def min_us(self) -> float:
        return min(self.per_op_ns) / 1000


def sync_runner(fn: Callable[..., Any], *args: Any, wall: bool = False) -> Runner:
    """Time ``fn(*args)``, ``n`` times in a plain loop (``wall``: always by the wall clock,
    for subjects that wait on I/O)."""

    def run(n: int) -> int:
        now = time.perf_counter_ns if wall else _clock
        start = now()
        for _ in range(n):
            fn(*args)
        return now() - start

    return run


def async_runner(
    loop: asyncio.AbstractEventLoop, fn: Callable[..., Awaitable[Any]], *args: Any
) -> Runner:
    """Time ``await fn(*args)``, ``n`` times in a loop inside one task of ``loop``."""

    async def body(n: int) -> int:
        now = _clock
        start = now()
        for _ in range(n):
            await fn(*args)
        return now() - start

    def run(n: int) -> int:
        return loop.run_until_complete(body(n))

    return run


def _calibrate(subject: Subject, round_ns: float, warmup: int) -> int:
    """Iterations that make one round of ``subject`` last about ``round_ns``."""
    if subject.setup is not None:
        subject.setup()
    try:
        for _ in range(warmup):
            subject.run(1)
        n = 1
        while True:
            elapsed = max(subject.run(n), 1)
            if elapsed >= round_ns * 0.8 or n >= 10_000_000:
                return n
            n = min(max(n * 2, int(n * round_ns / elapsed * 1.05)), 10_000_000)
    finally:
        if subject.teardown is not None:
            subject.teardown()


def measure(subjects: list[Subject], settings: Settings) -> dict[str, Sample]:
    """Interleaved rounds of every subject; the samples by subject name."""
    round_ns = settings.round_ms * 1e6
    counts = {s.name: _calibrate(s, round_ns, settings.warmup) for s in subjects}
    samples = {s.name: Sample(s.name, iterations=counts[s.name]) for s in subjects}
    for r in range(settings.rounds):
        shift = r % len(subjects)
        for subject in subjects[shift:] + subjects[:shift]:
            if subject.setup is not None:
                subject.setup()
            n = counts[subject.name]
            try:
                samples[subject.name].per_op_ns.append(subject.run(n) / n)
            finally:
                if subject.teardown is not None:
                    subject.teardown()
    return samples
