"""Argument keys: what a memo knows a call's arguments by.

An argument key is hashable and equal for two calls exactly when their arguments
are alike for every decision made from them: short scalars of equal value *and type*,
or plain JSON data with equal JSON (`fingerprint`). Pure; used by the memo of
decisions (``memo``) and the memo of keys (``keys``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping
from typing import Any, TypeAlias

import orjson

from ._plain import plain_size

__all__ = ["MEMO_DATA", "MEMO_TEXT", "SCALARS", "ArgumentKey", "argument_key", "fingerprint"]

ArgumentKey: TypeAlias = Hashable
"""What `argument_key` returns: a tuple of scalars and their types, or a digest."""

SCALARS = frozenset({str, int, float, bool, type(None)})
"""Argument types that stand for themselves (with their type)."""
MEMO_TEXT = 4096
"""Texts longer than this do not stand for themselves (they are fingerprinted)."""


MEMO_DATA = 16 * 1024
"""Arguments larger than this (one per value, plus the characters of its text) are not
fingerprinted: their calls are decided by the steps. A fingerprint costs about what
their key costs and saves the rest of the steps, which weigh less the larger the
data; a call over the limit pays for the walk up to it."""


def argument_key(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], *, data: bool = True
) -> ArgumentKey | None:
    """A hashable stand-in for a call's arguments, or ``None`` when they are not
    remembered. Short scalars stand for themselves, with their types (so that 1, 1.0
    and True stay apart); positional strings alone are the bare tuple (no other
    stand-in is a tuple of strings). Other arguments of plain JSON data, like a chat's
    ``messages`` or a long prompt, stand as a digest of their JSON (`fingerprint`),
    unless ``data`` is false (then they have no stand-in)."""
    if not kwargs and len(args) == 1 and type(args[0]) is str and len(args[0]) <= MEMO_TEXT:
        return args  # the commonest call, ``chat(prompt)``: the loop below, unrolled
    only_text = True
    for value in args:
        kind = type(value)
        if kind is str:
            if len(value) > MEMO_TEXT:
                return fingerprint(args, kwargs) if data else None
        elif kind in SCALARS:
            only_text = False
        else:
            return fingerprint(args, kwargs) if data else None
    if not kwargs:
        return args if only_text else (args, tuple(map(type, args)))
    items = tuple(kwargs.items())
    for _, value in items:
        kind = type(value)
        if kind is str:
            if len(value) > MEMO_TEXT:
                return fingerprint(args, kwargs) if data else None
        elif kind not in SCALARS:
            return fingerprint(args, kwargs) if data else None
    return args, tuple(map(type, args)), items, tuple(type(v) for _, v in items)


def fingerprint(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes | None:
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
