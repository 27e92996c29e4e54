"""Who hears where each call's answer came from, beside the trace: ``observe()`` blocks
and OpenTelemetry. Free when nobody listens.

`ACTIVE` holds the listeners called at each call's end (with its outcome); it is empty
unless an ``observe()`` block is open or an OpenTelemetry provider is configured, so a
call pays one truth test for it. OpenTelemetry is noticed by `check`, which every call
that misses or bypasses the cache runs (it calls the function anyway), and no hit: a
module lookup until the application has imported ``opentelemetry``, nothing at all
once armed. So spans and metrics start with the first such call after the provider is
set.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

__all__ = ["ACTIVE", "CallEnd", "add", "check", "notify", "remove"]


class CallEnd(NamedTuple):
    """One call's end, as its ``cache.result`` event has it."""

    fn: str
    key: str | None
    outcome: str
    tier: str | None
    policy: str | None
    started: float
    """``time.perf_counter()`` at the call's start."""
    ended: float
    """``time.perf_counter()`` at its end."""
    saved_ms: float
    saved_tokens: int
    extra: dict[str, Any]
    """The event's other fields (``stale``, ``similarity``, ...)."""
    value: Any
    """What the call returned (None for a bypass); the listener must not change it."""
    arguments: Mapping[str, Any] | None
    """The call's arguments by name, where known (else None)."""


Listener = Callable[[CallEnd], None]

ACTIVE: list[Listener] = []
"""The listeners called at each call's end; changed only by `add` and `remove`
(replaced, never mutated, so that a call iterates a list nobody changes)."""

_lock = threading.Lock()
_otel_armed = False


def add(listener: Listener) -> None:
    global ACTIVE
    with _lock:
        ACTIVE = [*ACTIVE, listener]


def remove(listener: Listener) -> None:
    global ACTIVE
    with _lock:
        ACTIVE = [other for other in ACTIVE if other is not listener]


def notify(end: CallEnd) -> None:
    """Tell every listener about a call's end. A failing listener never fails the
    call: its exception is logged (logger ``llm_middleware``) and dropped."""
    for listener in ACTIVE:
        try:
            listener(end)
        except Exception:
            logging.getLogger("llm_middleware").warning(
                "a call listener failed: %r", listener, exc_info=True
            )


def check() -> None:
    """Arm the OpenTelemetry listener once the application has configured a tracer or
    meter provider (``opentelemetry.trace.set_tracer_provider`` / ``metrics.
    set_meter_provider``). Run at the end of each call that missed or bypassed."""
    if _otel_armed:
        return
    traces = sys.modules.get("opentelemetry.trace")
    metrics = sys.modules.get("opentelemetry.metrics")
    if traces is None and metrics is None:  # not imported: no provider can be set
        return
    from .otel import configured, listener

    if configured():
        _arm_otel(listener())


def _arm_otel(listener: Listener) -> None:
    global _otel_armed
    with _lock:
        if _otel_armed:
            return
        _otel_armed = True
    add(listener)
