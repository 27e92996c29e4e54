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

# One variable for both settings, so that a call outside any block is known by one
# read: ``_NORMAL`` itself (a block sets a new pair, copying the setting it leaves).
_NORMAL: tuple[Mode, CachePolicy | None] = ("normal", None)
_controls: ContextVar[tuple[Mode, CachePolicy | None]] = ContextVar(
    "llm_middleware_controls", default=_NORMAL
)


@contextmanager
def _set(mode: Mode | None, policy: CachePolicy | None) -> Iterator[None]:
    """Set ``mode`` or ``policy`` (``None``: the enclosing block's, read on entry)."""
    outer_mode, outer_policy = _controls.get()
    pair = (outer_mode if mode is None else mode, outer_policy if policy is None else policy)
    token = _controls.set(_NORMAL if pair == _NORMAL else pair)
    try:
        yield
    finally:
        _controls.reset(token)


def bypass() -> AbstractContextManager[None]:
    """Calls inside neither read nor write the cache."""
    return _set("bypass", None)


def refresh() -> AbstractContextManager[None]:
    """Calls inside skip the lookup, call the function, and store the fresh answer."""
    return _set("refresh", None)


def use_policy(policy: CachePolicy) -> AbstractContextManager[None]:
    """Calls inside use ``policy`` instead of classifying their prompt."""
    if not isinstance(policy, CachePolicy):
        raise TypeError(f"use_policy takes a CachePolicy, not {policy!r}")
    return _set(None, policy)


def current_mode() -> Mode:
    return _controls.get()[0]


def current_policy() -> CachePolicy | None:
    return _controls.get()[1]


def no_control_block() -> bool:
    """No control block around the call: normal mode, no forced policy."""
    return _controls.get() is _NORMAL
