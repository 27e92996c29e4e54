"""The in-process figures: memory hit vs baseline and peers, tracing, async vs sync, miss
overhead, and hit cost by conversation size."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import structlog

from ._timing import Runner, Subject, async_runner, clock, sync_runner
from .context import Context
from .peers import build_peers
from .report import Row, Target, sample_row
from .workloads import (
    PROMPT,
    baseline_cached,
    canonical_hash,
    chat_messages,
    conversation,
    memory_cache,
    ours,
    ours_async,
    upstream,
)

__all__ = ["memory_hit", "miss_overhead", "size_scaling", "tracing"]

BASELINE = "baseline"
OURS = "ours, sync hit"
OURS_ASYNC = "ours, async hit"


def memory_hit(ctx: Context) -> list[Row]:
    """Memory-tier hit (tracing filtered) vs the baseline and every peer; async vs sync."""
    section = "memory hit (tracing filtered)"
    cache = memory_cache()
    sync_fn, async_fn = ours(cache), ours_async(cache)
    baseline = baseline_cached(upstream)
    ctx.tracing.filtered()
    sync_fn(PROMPT)
    baseline(PROMPT)
    ctx.loop.run_until_complete(async_fn(PROMPT))
    subjects = [
        Subject(BASELINE, sync_runner(baseline, PROMPT)),
        Subject(OURS, sync_runner(sync_fn, PROMPT), ctx.tracing.filtered),
        Subject(OURS_ASYNC, async_runner(ctx.loop, async_fn, PROMPT), ctx.tracing.filtered),
    ]
    statuses = build_peers(ctx.loop, ctx.workdir)
    subjects += [Subject(s.name, s.peer.run) for s in statuses if s.peer is not None]
    found = ctx.measure(section, subjects)
    base, mine, mine_async = found[BASELINE], found[OURS], found[OURS_ASYNC]
    rows = [
        sample_row(
            section,
            "baseline: cachetools.cached, JSON+blake2b key",
            base,
            against=base.median_us,
            vs=BASELINE,
        ),
        sample_row(
            section,
            "@cache_by_intent, sync",
            mine,
            against=base.median_us,
            vs=BASELINE,
            target=Target("<=", 0.9),
        ),
        sample_row(
            section,
            "@cache_by_intent, async (vs sync)",
            mine_async,
            against=mine.median_us,
            vs=OURS,
            target=Target("<=", 1.1),
        ),
    ]
    for status in statuses:
        label = f"peer {status.name}" + (f" {status.version}" if status.version else "")
        if status.peer is None:
            rows.append(Row(section, label, status=f"unavailable: {status.reason}"))
            continue
        reference = mine_async if status.peer.is_async else mine
        rows.append(
            sample_row(
                section,
                label,
                found[status.name],
                against=reference.median_us,
                vs=OURS_ASYNC if status.peer.is_async else OURS,
                target=Target(">=", 2.0) if status.peer.in_target else None,
                note=status.peer.how,
            )
        )
    return rows


def tracing(ctx: Context) -> list[Row]:
    """The same hit with tracing filtered, JSON lines at INFO and DEBUG (the production and the
    five-line set-ups of docs/trace.md), and unconfigured."""
    section = "memory hit by trace setting"
    fn = ours(memory_cache())
    baseline = baseline_cached(upstream)
    ctx.tracing.filtered()
    fn(PROMPT)
    baseline(PROMPT)
    run = sync_runner(fn, PROMPT)
    settings: list[tuple[str, Callable[[], None], Target | None]] = [
        ("filtered (level WARNING)", ctx.tracing.filtered, None),
        (f"{FAST}, INFO", ctx.tracing.fast_info, Target("<=", 2.5)),
        (f"{FAST}, DEBUG", ctx.tracing.fast_debug, None),
        (f"{SIMPLE}, INFO", ctx.tracing.json_info, None),
        (f"{SIMPLE}, DEBUG", ctx.tracing.json_debug, None),
        ("structlog unconfigured (stdlib fallback)", ctx.tracing.unconfigured, None),
    ]
    subjects = [Subject(BASELINE, sync_runner(baseline, PROMPT))]
    subjects += [Subject(name, run, setup) for name, setup, _ in settings]
    floors = [
        (f"{FLOOR}, {FAST}", ctx.tracing.fast_info),
        (f"{FLOOR}, {SIMPLE}", ctx.tracing.json_info),
    ]
    for name, configure in floors:
        subjects.append(Subject(name, *_floor(configure)))
    found = ctx.measure(section, subjects)
    ctx.tracing.filtered()
    base = found[BASELINE]
    rows = [sample_row(section, "baseline", base, against=base.median_us, vs=BASELINE)]
    for name, _, target in settings:
        figure = f"@cache_by_intent, {name}"
        sample = found[name]
        rows.append(sample_row(section, figure, sample, against=base.median_us, vs=BASELINE,
                               target=target))  # fmt: skip
    rows += [
        sample_row(section, name, found[name], against=base.median_us, vs=BASELINE)
        for name, _ in floors
    ]
    return rows


def _floor(configure: Callable[[], None]) -> tuple[Runner, Callable[[], None]]:
    """structlog's own cost of one INFO line like a hit's, through a logger bound once."""
    bound: list[Any] = []

    def setup() -> None:
        configure()
        bound[:] = [structlog.get_logger("llm_middleware").bind()]

    def event() -> None:
        bound[0].info("cache.result", **_RESULT_FIELDS)

    return sync_runner(event), setup


FAST = "JSON lines, production set-up (orjson)"
SIMPLE = "JSON lines, five-line set-up (stdlib json)"
FLOOR = "structlog alone: one INFO JSON line"
_RESULT_FIELDS: dict[str, Any] = {
    "call_id": "9f1c2a7be0d300000001",
    "fn": "app.chat",
    "key": "llmmw3:~:602c9a1f0e6b4d8c9a7e5f3b2d1c0a9e",
    "outcome": "hit",
    "tier": "L1",
    "policy": "long",
    "duration_ms": 0.05,
    "saved_ms": 812.4,
    "saved_tokens": 0,
}


_fresh = itertools.count()


def _miss_runner(fn: Callable[..., Any]) -> Runner:
    """Call ``fn`` with a prompt never seen before each time (made outside the timing)."""

    def run(n: int) -> int:
        prompts = [f"Explain topic number {next(_fresh)} in detail." for _ in range(n)]
        now = clock()
        start = now()
        for prompt in prompts:
            fn(prompt)
        return now() - start

    return run


def miss_overhead(ctx: Context) -> list[Row]:
    """A miss (lookup, call, store) minus the function's own time, vs the baseline's."""
    section = "miss overhead (beyond the function's own time)"
    ctx.tracing.filtered()
    subjects = [
        Subject("function alone", _miss_runner(upstream)),
        Subject(BASELINE, _miss_runner(baseline_cached(upstream))),
        Subject("ours", _miss_runner(ours(memory_cache())), ctx.tracing.filtered),
    ]
    found = ctx.measure(section, subjects)
    alone = found["function alone"].median_us
    base = found[BASELINE].median_us - alone
    mine = found["ours"].median_us - alone
    vs = "baseline overhead"
    return [
        sample_row(section, "function alone (not cached)", found["function alone"]),
        sample_row(section, "baseline miss", found[BASELINE]),
        sample_row(section, "@cache_by_intent miss", found["ours"]),
        Row(section, "baseline miss overhead", base, ratio=1.0, vs=vs),
        Row(section, "@cache_by_intent miss overhead", mine, ratio=mine / base, vs=vs),
    ]


SIZES = [(1_000, "1 kB"), (10_000, "10 kB"), (100_000, "100 kB"), (1_000_000, "1 MB")]


def size_scaling(ctx: Context) -> list[Row]:
    """Hit cost by conversation size, against serializing and hashing the conversation."""
    section = "hit cost by conversation size"
    rows = []
    ctx.tracing.filtered()
    for size, label in SIZES:
        messages = conversation(size)
        fn = ours(memory_cache(), chat_messages)
        baseline = baseline_cached(chat_messages)
        fn(messages)
        baseline(messages)
        ref = "serialize+hash " + label
        subjects = [
            Subject(ref, sync_runner(canonical_hash, messages)),
            Subject(BASELINE, sync_runner(baseline, messages)),
            Subject("ours", sync_runner(fn, messages), ctx.tracing.filtered),
        ]
        found = ctx.measure(f"{section} / {label}", subjects)
        cost = found[ref].median_us
        target = Target("<=", 1.2) if size == 1_000_000 else None
        rows += [
            sample_row(section, f"{label}: canonical JSON + blake2b", found[ref]),
            sample_row(section, f"{label}: baseline hit", found[BASELINE], against=cost, vs=ref),
            sample_row(
                section,
                f"{label}: @cache_by_intent hit",
                found["ours"],
                against=cost,
                vs=ref,
                target=target,
            ),
        ]
    return rows
