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

import functools
import itertools
import logging
import operator
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

__all__ = [
    "EVENTS",
    "LOGGER_NAME",
    "Counters",
    "Output",
    "Trace",
    "current_output",
    "new_call_id",
]

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


def current_output() -> Output:
    """Where a call's events go now: stdlib logging until structlog is configured, then
    a structlog logger assembled once per configuration (the same four configuration
    objects, by identity). Levels are asked per call, except of structlog's filtering
    loggers, whose levels never change."""
    global _assembled
    config = _CONFIG
    if config is None:  # a structlog without the configuration object: the public API
        if not structlog.is_configured():
            return Output(None)
    elif not config.is_configured:
        return Output(None)
    before, logger, fixed = _assembled
    if config is not None and before:  # the hot path: compare without building a tuple
        unchanged = (
            before[0] is config.default_wrapper_class
            and before[1] is config.logger_factory
            and before[2] is config.default_processors
            and before[3] is config.default_context_class
        )
    else:
        seen = _configuration()
        unchanged = len(before) == len(seen) and all(map(operator.is_, before, seen))
    if not unchanged:
        seen = _configuration()
        logger = structlog.get_logger(LOGGER_NAME).bind()
        fixed = Output(logger, filtering=True) if seen[0] in _FIXED_LEVELS else None
        _assembled = (seen, logger, fixed)
    return fixed if fixed is not None else Output(logger)


class Output:
    """Where one call's events go, and which levels are wanted there.

    ``info_line(event, fields)`` writes one INFO event (wanted there): the closing
    event of a hit, the one event written per call at INFO. For structlog's own
    filtering loggers it runs the processors and the output as their ``info`` does
    after its level check (`_filtered_info`)."""

    __slots__ = ("debug", "info", "info_line", "logger", "structured")

    def __init__(self, logger: Any, *, filtering: bool = False) -> None:
        self.structured = logger is not None
        self.info_line: Callable[[str, dict[str, Any]], object]
        if self.structured:
            self.logger = logger
            enabled = getattr(self.logger, "is_enabled_for", None)
            self.debug = True if enabled is None else bool(enabled(logging.DEBUG))
            self.info = True if enabled is None else bool(enabled(logging.INFO))
            if filtering:
                self.info_line = _filtered_info(logger)
            else:
                self.info_line = functools.partial(_structured_line, logger, logging.INFO)
        else:
            self.logger = _std
            self.debug = _std.isEnabledFor(logging.DEBUG)
            self.info = _std.isEnabledFor(logging.INFO)
            self.info_line = _std_info

    def wants(self, level: int) -> bool:
        if level >= logging.WARNING:
            return self.structured or _std.isEnabledFor(level)
        return self.info if level >= logging.INFO else self.debug

    def write(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self.structured:
            _structured_line(self.logger, level, event, fields)
        else:
            _std_line(level, event, fields)


def _structured_line(logger: Any, level: int, event: str, fields: dict[str, Any]) -> None:
    logger.log(level, event, **fields)


def _filtered_info(logger: Any) -> Callable[[str, dict[str, Any]], object]:
    """``logger.info`` of one of structlog's filtering loggers, taking the fields as a
    dict: ``_process_event`` and the wrapped logger's method are what its ``info`` calls
    (through ``_proxy_to_logger``, which takes keywords), both meant for wrapper classes.

    With no bound values (the library's own logger binds none), the fields dict is the
    event dict itself, as ``_process_event`` would build it (the fields, then
    ``event``), run through the processors without its two copies."""
    process = logger._process_event
    wrapped = logger._logger
    context = logger._context
    processors = logger._processors  # the configured list itself: changed in place at times
    if type(context) is not dict or context:

        def info_line(event: str, fields: dict[str, Any]) -> object:
            try:
                args, kw = process("info", event, fields)
                return wrapped.info(*args, **kw)
            except structlog.DropEvent:  # from a processor or the output, as in structlog
                return None

        return info_line

    def own_info_line(event: str, fields: dict[str, Any]) -> object:
        fields["event"] = event
        rendered: Any = fields
        try:
            for processor in processors:
                rendered = processor(wrapped, "info", rendered)
            # what the last processor returned, passed on as ``_process_event`` does
            if isinstance(rendered, (str, bytes, bytearray)):
                return wrapped.info(rendered)
            if isinstance(rendered, tuple):
                return wrapped.info(*rendered[0], **rendered[1])
            if isinstance(rendered, dict):
                return wrapped.info(**rendered)
        except structlog.DropEvent:
            return None
        raise ValueError(f"the last structlog processor returned {type(rendered).__name__}")

    return own_info_line


def _std_line(level: int, event: str, fields: dict[str, Any]) -> None:
    """An event on the stdlib logger: readable text, the fields kept on the record."""
    detail = " ".join(f"{name}={value!r}" for name, value in fields.items())
    _std.log(level, "%s %s", event, detail, extra={"llm_middleware": fields})


_std_info = functools.partial(_std_line, logging.INFO)


_call_prefix = os.urandom(6).hex()
_call_numbers = itertools.count(1)


def _reseed() -> None:
    """A forked child draws its own prefix: call ids stay unique across processes."""
    global _call_prefix, _call_numbers
    _call_prefix = os.urandom(6).hex()
    _call_numbers = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_call_id() -> str:
    """A process-random prefix and a counter: unique, and cheaper than random bytes."""
    return f"{_call_prefix}-{next(_call_numbers)}"


class Counters(Protocol):
    """The counters a call's decisions update (``stats.Recorders`` is one): the trace
    carries them so that each decision is counted where it is logged."""

    def hit(
        self, tier: str, saved_ms: float, saved_tokens: int, policy: str | None = None
    ) -> None: ...

    def miss(self, policy: str | None = None) -> None: ...

    def bypass(
        self, reason: str, *, whole_call: bool = True, policy: str | None = None
    ) -> None: ...

    def error(self, tier: str) -> None: ...

    def store(self) -> None: ...

    def promotion(self) -> None: ...

    def shadow(self, correct: bool) -> None: ...

    def verify(self, correct: bool) -> None: ...


class _Uncounted:
    """Counters that count nothing: a trace made without any."""

    __slots__ = ()

    def hit(self, tier: str, saved_ms: float, saved_tokens: int, policy: str | None = None) -> None:
        pass

    def miss(self, policy: str | None = None) -> None:
        pass

    def bypass(self, reason: str, *, whole_call: bool = True, policy: str | None = None) -> None:
        pass

    def error(self, tier: str) -> None:
        pass

    def store(self) -> None:
        pass

    def promotion(self) -> None:
        pass

    def shadow(self, correct: bool) -> None:
        pass

    def verify(self, correct: bool) -> None:
        pass


_UNCOUNTED = _Uncounted()


class Trace:
    """The events of one call: each carries the call's ``call_id``, ``fn`` and ``key``.
    ``stats`` are the counters the call's decisions update."""

    __slots__ = ("_call_id", "_output", "fn", "key", "stats")

    def __init__(
        self,
        fn: str,
        key: str | None = None,
        stats: Counters | None = None,
        out: Output | None = None,
    ) -> None:
        self.fn = fn
        self.key = key
        self.stats: Counters = stats if stats is not None else _UNCOUNTED
        self._call_id: str | None = None
        self._output = out

    @property
    def call_id(self) -> str:
        if self._call_id is None:
            self._call_id = new_call_id()
        return self._call_id

    @property
    def out(self) -> Output:
        """Where this call's events go, asked once per call."""
        return self._out()

    def _out(self) -> Output:
        """Where this call's events go, asked once per call."""
        output = self._output
        if output is None:
            output = self._output = current_output()
        return output

    def wants(self, level: int) -> bool:
        """Whether an event at ``level`` would be seen (hot paths skip building it)."""
        return self._out().wants(level)

    def emit(self, level: int, event: str, **fields: Any) -> None:
        """Emit ``event`` at ``level`` with this call's identity and ``fields``."""
        self.write(level, event, fields)

    def write(self, level: int, event: str, fields: dict[str, Any]) -> None:
        """`emit` with the fields as a dict (hot paths build it once)."""
        output = self._out()
        if output.wants(level):
            identity = {"call_id": self.call_id, "fn": self.fn, "key": self.key}
            output.write(level, event, {**identity, **fields})

    def result(
        self,
        outcome: str,
        tier: str | None,
        policy: str | None,
        started: float,
        saved_ms: float,
        saved_tokens: int,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """The closing ``cache.result`` event, written when INFO is wanted; ``started``
        is the call's ``time.perf_counter()`` at its start; ``extra``: more fields
        (``stale``, ``similarity``). Durations are rounded to three decimals
        (``int(x + 0.5)``: ``round`` costs more)."""
        output = self._output
        if output is None:
            output = self._out()
        if not output.info:
            return
        call_id = self._call_id
        if call_id is None:
            call_id = self._call_id = new_call_id()
        fields = {
            "call_id": call_id,
            "fn": self.fn,
            "key": self.key,
            "outcome": outcome,
            "tier": tier,
            "policy": policy,
            "duration_ms": int((time.perf_counter() - started) * 1_000_000.0 + 0.5) / 1000.0,
            "saved_ms": int(saved_ms * 1000.0 + 0.5) / 1000.0,
            "saved_tokens": saved_tokens,
        }
        if extra:
            fields.update(extra)
        output.info_line("cache.result", fields)

    def debug(self, event: str, **fields: Any) -> None:
        self.emit(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.emit(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.emit(logging.WARNING, event, **fields)
