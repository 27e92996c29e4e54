"""The one walker of plain JSON data: exact built-in types that read back as they were.

Plain JSON data is dicts with ``str`` keys, lists (and, where a caller allows them,
tuples), ``str``, ``int``, ``bool``, ``None`` and finite ``float`` -- of exactly those
types, no subclasses (an IntEnum or a str subclass could stand for something its JSON
does not show, and would read back as the base type). Used for argument fingerprints
(``memo``), for values stored as JSON (``codec``), for the data a closure captures
(``_identity``) and for keys (``keys``: plain data is written by orjson without
further checks; only other data takes the key's own walk, which accepts more types).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["is_plain", "plain_size"]

_LEAVES = frozenset({int, bool, type(None)})


def plain_size(values: Iterable[Any], budget: int, *, tuples: bool = True) -> int:
    """``budget`` less the size of ``values`` (1 for each value, plus the length of
    each text), or -1: when something in them is not plain JSON data, or the size runs
    over the budget (so the walk is bounded too). ``tuples``: whether tuples count as
    lists. Deep nesting raises `RecursionError`."""
    for value in values:
        kind = type(value)
        if kind is str:
            budget -= len(value) + 1
        elif kind is dict:  # a chat message: its text values are counted in place
            for key, item in value.items():
                if type(key) is not str:
                    return -1
                if type(item) is str:
                    budget -= len(key) + len(item) + 1
                else:
                    budget = plain_size((item,), budget - len(key), tuples=tuples)
                if budget < 0:
                    return -1
        elif kind is list or (tuples and kind is tuple):
            budget = plain_size(value, budget - 1, tuples=tuples)
        elif kind is float:
            if value - value != 0.0:  # NaN or an infinity (JSON would write null)
                return -1
            budget -= 1
        elif kind in _LEAVES:
            budget -= 1
        else:
            return -1
        if budget < 0:
            return -1
    return budget


def is_plain(value: object, *, tuples: bool = False) -> bool:
    """Whether ``value`` is plain JSON data (``tuples``: tuples count as lists); without
    tuples it reads back from JSON equal *and of the same types*. Too deep to walk
    counts as not plain."""
    try:
        return plain_size((value,), 1 << 62, tuples=tuples) >= 0
    except RecursionError:
        return False
