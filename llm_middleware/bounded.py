"""`BoundedMemo`: the one bounded memo of the library (decisions, keys, rules, envelopes).

A memo of pure results -- what a function gave for an input it will give again -- that
never grows past ``size`` entries: when full, the next `put` starts it afresh. Clearing
beats eviction order here: the memos sit on hot paths, where a dict lookup is the whole
cost, and a workload wider than the memo gains little from any eviction policy.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["BoundedMemo"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(dict[K, V]):
    """A dict of at most ``size`` entries: read it as a dict, write it with `put`."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"a memo holds at least one entry, not {size}")
        self.size = size

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` for ``key``, forgetting everything first when full."""
        if len(self) >= self.size:
            self.clear()
        self[key] = value
