"""Shared fixtures: a fresh process configuration per test, a fake clock, memory tiers."""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

pytest.register_assert_rewrite("llm_middleware.testing")

from llm_middleware import MultiLevelCache, config  # noqa: E402
from llm_middleware.backends.memory import MemoryBackend  # noqa: E402 - after the assert-rewrite hook
from llm_middleware.testing import FakeClock  # noqa: E402

from .support.llm import Counter  # noqa: E402

pytest_plugins = [
    "tests.support.fixtures_anthropic",
    "tests.support.fixtures_memcached",
    "tests.support.fixtures_openai",
    "tests.support.fixtures_redis",
]

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, None]:
    """Under ``CI=true`` a skipped test is a failure: CI must run every real server test."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {report.longrepr}"


@pytest.fixture(autouse=True)
def _fresh_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from the unconfigured process default cache and rules."""
    monkeypatch.delenv(config.TIERS_ENV, raising=False)
    config.reset()
    yield
    config.reset()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock shared by a cache and its backends."""
    return FakeClock(1_000_000.0)


@pytest.fixture
def cache(clock: FakeClock) -> MultiLevelCache:
    """The sketch's two memory tiers (100 items / 300 s, 1,000 items / 3,600 s) on a fake clock."""
    return MultiLevelCache(
        [
            MemoryBackend(maxsize=100, ttl=300, timer=clock),
            MemoryBackend(maxsize=1000, ttl=3600, timer=clock),
        ],
        timer=clock,
    )


@pytest.fixture
def info_events() -> Iterator[list[dict[str, Any]]]:
    """The events structlog at INFO sees (a filtering logger: debug events unwanted, so a
    hit takes the short route and writes its ``cache.result`` itself)."""
    capture = LogCapture()
    structlog.configure(
        processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
    )
    try:
        yield capture.entries
    finally:
        structlog.reset_defaults()


@pytest.fixture
def llm() -> Counter:
    """A fresh stand-in LLM: numbered answers, counted calls (see ``tests/support/llm.py``)."""
    return Counter()
