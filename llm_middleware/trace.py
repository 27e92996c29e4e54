"""Trace events: one structlog event per cache decision, on the logger ``llm_middleware``.

The library never configures structlog. Until the application does
(`structlog.is_configured()`), events go to the stdlib logger ``llm_middleware``
instead, so an unconfigured application hears only warnings, like from any quiet
library. Once structlog is configured, every event flows through its processors.

Events cost nearly nothing when nobody listens: each call asks once whether its
levels are enabled (a filtering logger's ``is_enabled_for``, or the stdlib
logger's level) and builds no event below them. The assembled structlog logger
is reused for as long as structlog's configuration stays the same.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import structlog

from .stats import Recorders

__all__ = ["EVENTS", "LOGGER_NAME", "Output", "Trace", "current_output"]

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
    "cache.lock",
)

_std = logging.getLogger(LOGGER_NAME)
# structlog's global configuration object: read (never written) to notice a
# reconfiguration without copying the configuration on every call.
_CONFIG: Any = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
_assembled: tuple[tuple[Any, ...], Any, Output | None] = ((), None, None)
# structlog's own level-filtering loggers: their levels are fixed by their class, so
# their Output can be reused; any other logger (e.g. stdlib-backed) is asked per call.
_FIXED_LEVELS = frozenset(
    structlog.make_filtering_bound_logger(level)
    for level in (logging.NOTSET, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
)


def _configuration() -> tuple[Any, ...]:
    """The parts of structlog's configuration an assembled logger depends on."""
    if _CONFIG is not None:
        return (
            _CONFIG.default_wrapper_class,
            _CONFIG.logger_factory,
            _CONFIG.default_processors,
            _CONFIG.default_context_class,
        )
    config = structlog.get_config()
    return (
        config["wrapper_class"],
        config["logger_factory"],
        config["processors"],
        config["context_class"],
    )


def _is_configured() -> bool:
    return bool(_CONFIG.is_configured) if _CONFIG is not None else structlog.is_configured()


def current_output() -> Output:
    """Where a call's events go now: stdlib logging until structlog is configured, then
    a structlog logger assembled once per configuration. Levels are asked per call,
    except of structlog's filtering loggers, whose levels never change."""
    global _assembled
    if not _is_configured():
        return Output(None)
    seen = _configuration()
    seen_before, logger, fixed = _assembled
    if seen_before != seen:
        logger = structlog.get_logger(LOGGER_NAME).bind()
        fixed = Output(logger) if seen[0] in _FIXED_LEVELS else None
        _assembled = (seen, logger, fixed)
    return fixed if fixed is not None else Output(logger)


class Output:
    """Where one call's events go, and which levels are wanted there."""

    __slots__ = ("debug", "info", "logger", "structured")

    def __init__(self, logger: Any) -> None:
        self.structured = logger is not None
        if self.structured:
            self.logger = logger
            enabled = getattr(self.logger, "is_enabled_for", None)
            self.debug = True if enabled is None else bool(enabled(logging.DEBUG))
            self.info = True if enabled is None else bool(enabled(logging.INFO))
        else:
            self.logger = _std
            self.debug = _std.isEnabledFor(logging.DEBUG)
            self.info = _std.isEnabledFor(logging.INFO)

    def wants(self, level: int) -> bool:
        if level >= logging.WARNING:
            return self.structured or _std.isEnabledFor(level)
        return self.info if level >= logging.INFO else self.debug

    def write(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self.structured:
            self.logger.log(level, event, **fields)
        else:
            detail = " ".join(f"{name}={value!r}" for name, value in fields.items())
            _std.log(level, "%s %s", event, detail, extra={"llm_middleware": fields})


def _new_call_id() -> str:
    return os.urandom(8).hex()


class Trace:
    """The events of one call: each carries the call's ``call_id``, ``fn`` and ``key``.
    ``stats`` are the counters the call's decisions update."""

    __slots__ = ("_call_id", "_output", "fn", "key", "stats")

    def __init__(
        self,
        fn: str,
        key: str | None = None,
        stats: Recorders | None = None,
        out: Output | None = None,
    ) -> None:
        self.fn = fn
        self.key = key
        self.stats = stats if stats is not None else Recorders()
        self._call_id: str | None = None
        self._output = out

    @property
    def call_id(self) -> str:
        if self._call_id is None:
            self._call_id = _new_call_id()
        return self._call_id

    def wants(self, level: int) -> bool:
        """Whether an event at ``level`` would be seen (hot paths skip building it)."""
        output = self._output
        if output is None:
            output = self._output = current_output()
        return output.wants(level)

    def emit(self, level: int, event: str, **fields: Any) -> None:
        """Emit ``event`` at ``level`` with this call's identity and ``fields``."""
        output = self._output
        if output is None:
            output = self._output = current_output()
        if output.wants(level):
            identity = {"call_id": self.call_id, "fn": self.fn, "key": self.key}
            output.write(level, event, {**identity, **fields})

    def debug(self, event: str, **fields: Any) -> None:
        self.emit(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.emit(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.emit(logging.WARNING, event, **fields)
