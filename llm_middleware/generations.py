"""Clearing without a key scan: generation numbers kept in the shared tier.

Every stored key is *physical*: the logical key (``{prefix}:{namespace}:{digest}``)
with the current generations of the whole cache and of its namespace woven into
it (``{prefix}:{namespace}@{whole}.{ns}:{digest}``; unchanged while both are
unset, so caches that never cleared keep their keys). `MultiLevelCache.clear`
writes a new generation to the shared tier (the last one): from then on the
old physical keys are never asked for, so their entries are unreachable, and
they expire by their TTL. Each process reads the generations again at most
every ``check_s`` seconds (by the cache's clock), and at once after clearing
itself. A generation is a random token, not a counter: two processes clearing
at the same time both make the old keys unreachable.

The generation record lives as long as the longest lifetime the shared tier
grants (``RECORD_TTL``, capped by the tier): a tier that evicts it early (a
memcached under memory pressure) would make the entries of before the clear
reachable again until they expire.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from ._io import Flow, Tier, TierOp
from .bounded import BoundedMemo
from .keys import PREFIX, namespace_part

__all__ = ["RECORD_TTL", "Generations"]

RECORD_TTL = 30 * 24 * 3600.0
"""How long a generation record is kept (memcached's longest relative lifetime)."""
_WHOLE = f"{PREFIX}:gen"  # the record of the whole cache's generation
_MAX_KNOWN = 4096


def _record_key(part: str) -> str:
    return f"{_WHOLE}:{part}"


def _split(key: str) -> tuple[str, str, str] | None:
    """``(prefix, namespace part, digest)`` of a key this library built, else None."""
    parts = key.split(":")
    if len(parts) == 3 and parts[0] == PREFIX:
        return parts[0], parts[1], parts[2]
    return None


class Generations:
    """The generations one `MultiLevelCache` reads and writes in its ``shared`` tier."""

    def __init__(self, shared: Tier, check_s: float, timer: Callable[[], float]) -> None:
        if not check_s >= 0:
            raise ValueError(f"generation_check_s must be >= 0 seconds, got {check_s!r}")
        self.shared = shared
        self.check_s = check_s
        self.timer = timer
        # record key -> (generation, checked at); "" is "never cleared"
        self._known: BoundedMemo[str, tuple[str, float]] = BoundedMemo(_MAX_KNOWN)
        # logical key -> (physical key, known until): a repeated hit's key at one lookup
        self._physical: BoundedMemo[str, tuple[str, float]] = BoundedMemo(_MAX_KNOWN)

    def _learn(self, record: str, generation: str, now: float) -> None:
        """Keep ``record``'s generation, read or made at ``now``; a changed one makes
        the physical keys worked out before it wrong, so they are forgotten."""
        before = self._known.get(record)
        if before is None or before[0] != generation:
            self._physical.clear()
        self._known.put(record, (generation, now))

    def _due(self, record: str, now: float) -> bool:
        known = self._known.get(record)
        return known is None or now - known[1] >= self.check_s

    @staticmethod
    def _weave(key: str, split: tuple[str, str, str] | None, whole: str, ns: str) -> str:
        if not whole and not ns:
            return key
        if split is None:  # a key given to MultiLevelCache.get/set: the whole cache's only
            return f"{key}@{whole}" if whole else key
        prefix, part, digest = split
        return f"{prefix}:{part}@{whole}.{ns}:{digest}"

    def known(self, key: str, now: float | None = None) -> str | None:
        """The physical key of ``key`` without I/O, or None when a generation is due
        to be read again (the caller then takes the path that reads it). ``now``: the
        time by the cache's clock, when the caller has read it already."""
        if now is None:
            now = self.timer()
        remembered = self._physical.get(key)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        known = self._known
        whole = known.get(_WHOLE)
        if whole is None or now - whole[1] >= self.check_s:
            return None
        split = _split(key)
        if split is None:
            physical, checked = self._weave(key, None, whole[0], ""), whole[1]
        else:
            ns = known.get(_record_key(split[1]))
            if ns is None or now - ns[1] >= self.check_s:
                return None
            physical, checked = self._weave(key, split, whole[0], ns[0]), min(whole[1], ns[1])
        self._physical.put(key, (physical, checked + self.check_s))
        return physical

    def resolve(self, key: str, report: Callable[[Exception], None]) -> Flow[str]:
        """The physical key of ``key``, reading generations that are due from the
        shared tier; a failed read keeps the last one known (``report`` logs it)."""
        now = self.timer()
        split = _split(key)
        values = []
        for record in (_WHOLE, None if split is None else _record_key(split[1])):
            if record is None:
                values.append("")
                continue
            if self._due(record, now):
                try:
                    data = yield TierOp(self.shared, "get", record)
                except Exception as exc:
                    report(exc)
                    data = None if record not in self._known else self._known[record][0].encode()
                generation = _decode(data)
                self._learn(record, generation, now)
            values.append(self._known[record][0])
        return self._weave(key, split, values[0], values[1])

    def bump(self, namespace: str | None) -> Flow[None]:
        """Make a new generation for ``namespace`` (None: the whole cache), known
        at once here and to other processes once they read it again."""
        record = _WHOLE if namespace is None else _record_key(namespace_part(namespace))
        generation = secrets.token_hex(4)
        yield TierOp(self.shared, "set", record, generation.encode(), RECORD_TTL)
        self._learn(record, generation, self.timer())


def _decode(data: Any) -> str:
    if not data:
        return ""
    try:
        text = bytes(data).decode("ascii")
    except (UnicodeDecodeError, TypeError):
        return ""
    return text if text.isalnum() and len(text) <= 32 else ""
