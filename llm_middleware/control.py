"""Per-call control: context managers over contextvars (safe across threads and tasks).

A setting applies to the calls made inside the ``with`` block -- in this thread or
task, and in tasks it starts -- and nowhere else. Blocks nest; the innermost wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Literal

from .policy import CachePolicy

__all__ = [
    "Mode",
    "bypass",
    "current_mode",
    "current_policy",
    "no_control_block",
    "refresh",
    "use_policy",
]

Mode = Literal["normal", "bypass", "refresh"]

_mode: ContextVar[Mode] = ContextVar("llm_middleware_mode", default="normal")
_policy: ContextVar[CachePolicy | None] = ContextVar("llm_middleware_policy", default=None)


@contextmanager
def _set_mode(mode: Mode) -> Iterator[None]:
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


def bypass() -> AbstractContextManager[None]:
    """Calls inside neither read nor write the cache."""
    return _set_mode("bypass")


def refresh() -> AbstractContextManager[None]:
    """Calls inside skip the lookup, call the function, and store the fresh answer."""
    return _set_mode("refresh")


@contextmanager
def use_policy(policy: CachePolicy) -> Iterator[None]:
    """Calls inside use ``policy`` instead of classifying their prompt."""
    if not isinstance(policy, CachePolicy):
        raise TypeError(f"use_policy takes a CachePolicy, not {policy!r}")
    token = _policy.set(policy)
    try:
        yield
    finally:
        _policy.reset(token)


def current_mode() -> Mode:
    return _mode.get()


def current_policy() -> CachePolicy | None:
    return _policy.get()


def no_control_block() -> bool:
    """No control block around the call: normal mode, no forced policy."""
    return _mode.get() == "normal" and _policy.get() is None
