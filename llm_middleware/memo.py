"""The memo of decisions: "these arguments give this key and this policy".

The chain's steps decide a call from its arguments, the process configuration and
the controls around it. When every step declares that its outcome depends on
nothing else (``remembers = True``, see ``chain``), the decision can be kept: a
repeated call of short scalar arguments (the common ``chat(prompt, model=...)``) or
of plain JSON data (``chat(messages)``: lists and dicts of strings and numbers,
known by a digest of their JSON) skips the steps and goes straight to the lookup.

Pure and I/O-free: nothing here reads a tier, writes an event or counts. The
caller hands in the configuration's generation, so a decision made under another
configuration is never taken.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from typing import Any, NamedTuple

import orjson

from ._plain import plain_size
from .bounded import BoundedMemo
from .keys import MEMO_TEXT, SCALARS

__all__ = ["MEMO_DATA", "Decision", "DecisionMemo", "fingerprint", "stand_in"]

_MAX_DECISIONS = 4096

MEMO_DATA = 16 * 1024
"""Arguments larger than this (one per value, plus the characters of its text) are not
fingerprinted: their calls are decided by the steps. A fingerprint costs about what
their key costs and saves the rest of the steps, which weigh less the larger the
data; a call over the limit pays for the walk up to it."""


def stand_in(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
    """A hashable stand-in for a call's arguments, or ``None`` when they are not
    remembered. Short scalars stand for themselves, with their types (so that 1, 1.0
    and True stay apart); positional strings alone are the bare tuple (no other
    stand-in is a tuple of strings). Other arguments of plain JSON data, like a chat's
    ``messages`` or a long prompt, stand as a digest of their JSON (`fingerprint`)."""
    only_text = True
    for value in args:
        kind = type(value)
        if kind is str:
            if len(value) > MEMO_TEXT:
                return fingerprint(args, kwargs)
        elif kind in SCALARS:
            only_text = False
        else:
            return fingerprint(args, kwargs)
    if not kwargs:
        return args if only_text else (args, tuple(map(type, args)))
    items = tuple(kwargs.items())
    for _, value in items:
        kind = type(value)
        if kind is str:
            if len(value) > MEMO_TEXT:
                return fingerprint(args, kwargs)
        elif kind not in SCALARS:
            return fingerprint(args, kwargs)
    return args, tuple(map(type, args)), items, tuple(type(v) for _, v in items)


def fingerprint(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes | None:
    """A 128-bit digest of the arguments' JSON when they are plain JSON data of exact
    built-in types, of size up to `MEMO_DATA`; else ``None``.

    Plain data reads the same way to every step: equal JSON means an equal intent text,
    an equal key and so an equal decision. Anything else -- an Enum or a model, a str
    subclass, NaN (JSON's null, like None) -- could stand for something its JSON does
    not show, and is left to the steps. Keys keep their order here (a reordered dict is
    only a second fingerprint of the same decision). Any failure (an integer over 64
    bits, a lone surrogate, deep nesting, a dict changed by another thread during the
    walk) means no fingerprint: the steps decide, and handle it as they do."""
    try:
        if plain_size((args, kwargs), MEMO_DATA) < 0:
            return None
        data = orjson.dumps((args, kwargs))
    except Exception:
        return None
    return hashlib.blake2b(data, digest_size=16).digest()


class Decision(NamedTuple):
    """What the steps decided for a call: its key, its policy's name (as events
    write it) and the configuration generation it was made under."""

    key: str
    policy: str
    generation: int = 0


class DecisionMemo:
    """The decisions of one decorated function's calls, by the arguments' `stand_in`.

    Bounded (`BoundedMemo`); thread-safe as a dict is (a lost race only costs a
    second run of the steps)."""

    __slots__ = ("_decisions",)

    def __init__(self, size: int = _MAX_DECISIONS) -> None:
        self._decisions: BoundedMemo[Hashable, Decision] = BoundedMemo(size)

    def remember(
        self,
        arguments: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str,
        policy: str,
        generation: int,
    ) -> None:
        """Keep the decision ``(key, policy)`` for the arguments ``arguments`` (their
        `stand_in`) stands for. ``generation``: the configuration's, read before the
        steps ran. Data that another thread changed while the steps ran (its
        fingerprint is no longer ``arguments``) is not kept: its key may be the other
        content's."""
        if type(arguments) is bytes and fingerprint(args, kwargs) != arguments:
            return
        self._decisions.put(arguments, Decision(key, policy, generation))

    def recall(self, arguments: Hashable, generation: int) -> Decision | None:
        """The decision kept for ``arguments`` (a `stand_in`), if it was made under the
        configuration ``generation``."""
        decision = self._decisions.get(arguments)
        if decision is None or decision.generation != generation:
            return None
        return decision
