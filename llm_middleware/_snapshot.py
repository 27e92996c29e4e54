"""Arguments as they were when the key was made, for every call made later or for others.

A key stands for the content of a call's arguments at the moment it is made. A call
made after that -- the background refresh of a stale answer, the one upstream call
whose answer concurrent callers share, a call made after waiting on another process's
lock -- must run on exactly that content, or its answer would be stored (and served)
for content it was not computed from: a chat loop that appends to its ``history``
right after receiving an answer must not have the refresh answer the new conversation.

`snapshot_call` binds the function to deep copies of its arguments, taken at once;
arguments left out of the key (``ignore=``: clients, timeouts) are passed as they
are. Arguments of immutable types are not copied. When a copy cannot be made (an
argument ``copy.deepcopy`` refuses), or the call's answer depends on the state of a
live object (a method's instance with ``__cache_key__``), the call is *private*: it
runs on the live arguments for its caller alone, never shared, never refreshed.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["snapshot_call"]

_IMMUTABLE = frozenset({str, int, float, bool, bytes, type(None)})


def _immutable(values: Iterable[Any]) -> bool:
    return all(type(value) in _IMMUTABLE for value in values)


def snapshot_call(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    live: Iterable[Any] = (),
    instance: object = None,
) -> tuple[Callable[[], Any], bool]:
    """``(call, private)``: ``func`` bound to copies of ``args``/``kwargs`` (the objects
    in ``live`` passed as they are), or to the arguments themselves with ``private``
    true when they cannot be copied or ``instance`` keys on its own state."""
    keyed_instance = instance is not None and not isinstance(instance, type)
    if keyed_instance and callable(getattr(instance, "__cache_key__", None)):
        return functools.partial(func, *args, **kwargs), True
    if _immutable(args) and _immutable(kwargs.values()):
        return functools.partial(func, *args, **kwargs), False
    memo: dict[int, Any] = {id(value): value for value in live}  # deepcopy leaves these
    try:
        copied_args, copied_kwargs = copy.deepcopy((args, kwargs), memo)
    except Exception:  # a lock, a socket, a generator...: no snapshot
        return functools.partial(func, *args, **kwargs), True
    return functools.partial(func, *copied_args, **copied_kwargs), False
