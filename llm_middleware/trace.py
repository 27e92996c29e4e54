"""Trace events: one structlog event per cache decision, on the logger ``llm_middleware``.

The library never configures structlog. Until the application does
(`structlog.is_configured()`), events go to the stdlib logger ``llm_middleware``
instead, so an unconfigured application hears only warnings, like from any quiet
library. Once structlog is configured, every event flows through its processors.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import structlog

from .stats import Recorders

__all__ = ["EVENTS", "LOGGER_NAME", "Trace"]

LOGGER_NAME = "llm_middleware"

EVENTS = (
    "cache.policy",
    "cache.lookup",
    "cache.call",
    "cache.promote",
    "cache.store",
    "cache.bypass",
    "cache.error",
    "cache.result",
)

_slog = structlog.get_logger(LOGGER_NAME)
_std = logging.getLogger(LOGGER_NAME)


def _new_call_id() -> str:
    return os.urandom(8).hex()


class Trace:
    """The events of one call: each carries the call's ``call_id``, ``fn`` and ``key``.
    ``stats`` are the counters the call's decisions update."""

    __slots__ = ("_call_id", "fn", "key", "stats")

    def __init__(self, fn: str, key: str | None = None, stats: Recorders | None = None) -> None:
        self.fn = fn
        self.key = key
        self.stats = stats if stats is not None else Recorders()
        self._call_id: str | None = None

    @property
    def call_id(self) -> str:
        if self._call_id is None:
            self._call_id = _new_call_id()
        return self._call_id

    def emit(self, level: int, event: str, **fields: Any) -> None:
        """Emit ``event`` at ``level`` with this call's identity and ``fields``."""
        if structlog.is_configured():
            _slog.log(level, event, call_id=self.call_id, fn=self.fn, key=self.key, **fields)
        elif _std.isEnabledFor(level):
            fields = {"call_id": self.call_id, "fn": self.fn, "key": self.key, **fields}
            detail = " ".join(f"{name}={value!r}" for name, value in fields.items())
            _std.log(level, "%s %s", event, detail, extra={"llm_middleware": fields})

    def debug(self, event: str, **fields: Any) -> None:
        self.emit(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.emit(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.emit(logging.WARNING, event, **fields)
