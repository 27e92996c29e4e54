"""Backends across a fork: fresh locks and connections in the child.

A fork copies the parent's memory as it is at that instant: a lock another thread held
stays held forever in the child (its holder does not exist there), a library's state
may be half-changed, and a socket or database connection is shared with the parent, so
the two would interleave their requests on it. Each built-in backend registers itself
here (``os.register_at_fork``):

- before the fork, a backend whose operations run under a lock of its own takes that
  lock (waiting at most its documented timeout), so that no other thread is inside it
  at the fork; the parent releases it right after;
- in the child, before anything else runs, each backend replaces its locks and drops
  (without closing: closing could disturb the parent's) its connections, which it
  then reopens on first use.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from typing import Any, Protocol

__all__: list[str] = []  # private to the built-in backends: no public API here


class ForkSafe(Protocol):
    def _after_fork(self) -> None:
        """Replace locks and connections in a freshly forked child."""


class Quiesced:
    """A lock held across a fork by the forking thread (bounded by ``timeout``)."""

    __slots__ = ("held", "lock", "timeout")

    def __init__(self, lock: Any, timeout: float) -> None:
        self.lock, self.timeout, self.held = lock, timeout, False

    def before(self) -> None:
        self.held = self.lock.acquire(timeout=self.timeout)

    def after_in_parent(self) -> None:
        if self.held:
            self.held = False
            self.lock.release()


_backends: weakref.WeakSet[Any] = weakref.WeakSet()
_abandoned: list[object] = []  # the parent's connections, kept unclosed in the child


def renew_after_fork(backend: ForkSafe) -> None:
    """Call ``backend._after_fork()`` in every child forked from now on."""
    _backends.add(backend)


def abandon(connection: object) -> None:
    """Keep a connection inherited from the parent alive and unused: closing it here
    might send a goodbye on the parent's socket, or release the parent's file locks."""
    if connection is not None:
        _abandoned.append(connection)


_quiesced: list[Quiesced] = []


def _before() -> None:
    _quiesced.clear()
    for backend in list(_backends):
        quiesce = getattr(backend, "_quiesce", None)
        if quiesce is not None:
            hold = quiesce()
            hold.before()
            _quiesced.append(hold)


def _in_parent() -> None:
    for hold in reversed(_quiesced):
        hold.after_in_parent()
    _quiesced.clear()


def _in_child() -> None:
    _quiesced.clear()  # the child's locks are new: the parent's held ones are dropped
    for backend in list(_backends):
        with contextlib.suppress(Exception):  # one that cannot renew fails on use, visibly
            backend._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before, after_in_parent=_in_parent, after_in_child=_in_child)
