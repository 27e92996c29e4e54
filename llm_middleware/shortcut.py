"""The short path of a repeated hit: its decision remembered, its answer fresh in tier 1.

The chain's steps decide a call from its arguments, the process configuration and
the controls around it. For a plain function called with short scalar arguments
(the common ``chat(prompt, model=...)``) that decision -- the key and the policy --
is remembered. When the same arguments come again, with no control block around
the call, the same configuration, and debug events not wanted, tier 1 is read at
once; a fresh, valid entry there is the answer, with the same counters and the
same ``cache.result`` event as the full flow. Anything else (absent, stale or
invalid entry, failing tier) goes on to the full flow, handing it what tier 1
returned so that it is not read twice. The full flow gives the same answer either
way; this only skips work whose outcome is already known.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from . import config
from .chain import CallContext
from .codec import Codec
from .control import neutral
from .keys import MEMO_TEXT, SCALARS
from .stats import Recorders
from .tiers import FirstRead, MultiLevelCache
from .trace import current_output, new_call_id, write_result

__all__ = ["MISSING", "Decision", "Shortcut", "probe"]

MISSING: Any = object()
"""`Shortcut.read`'s "no answer here": take the full flow."""

_MAX_DECISIONS = 4096


def probe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
    """A hashable stand-in for a call's arguments when all are short scalars, with
    their types (so that 1, 1.0 and True stay apart); else ``None``. Positional
    strings alone stand for themselves (no other stand-in is a tuple of strings)."""
    only_text = True
    for value in args:
        kind = type(value)
        if kind is str:
            if len(value) > MEMO_TEXT:
                return None
        elif kind in SCALARS:
            only_text = False
        else:
            return None
    if not kwargs:
        return args if only_text else (args, tuple(map(type, args)))
    items = tuple(kwargs.items())
    for _, value in items:
        kind = type(value)
        if kind is str:
            if len(value) > MEMO_TEXT:
                return None
        elif kind not in SCALARS:
            return None
    return args, tuple(map(type, args)), items, tuple(type(v) for _, v in items)


class Decision(NamedTuple):
    """What the steps decided for a call: its key and its policy's name (as events
    write it)."""

    key: str
    policy: str
    generation: int = 0


class Shortcut:
    """The short path of one decorated function's hits.

    `read` answers a fresh hit in tier 1 for a decided call. `recall` remembers the
    decisions of calls of scalar arguments -- only for functions whose decision
    depends on nothing but the arguments, the configuration and the controls
    (``remembers``: no user steps, no namespace or prompt reader callables, scalar
    defaults; the caller remembers only decisions made by `IntentRules`, never by a
    custom classifier).
    """

    __slots__ = ("_decisions", "adapter_on_hit", "codec", "fn", "remembers")

    def __init__(
        self,
        fn: str,
        codec: Codec,
        on_hit: Callable[[Any], Any] | None,
        *,
        remembers: bool,
    ) -> None:
        self.fn = fn
        self.codec = codec
        self.adapter_on_hit = on_hit
        self.remembers = remembers
        self._decisions: dict[tuple[Any, ...], Decision] = {}

    def remember(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], ctx: CallContext, generation: int
    ) -> None:
        """Keep the decision the steps made for these arguments, if it is the neutral
        one (no control block) and cacheable. ``generation``: the configuration's,
        read before the steps ran."""
        if not self.remembers or ctx.key is None or ctx.policy is None:
            return
        if ctx.skip is not None or not neutral():
            return
        stand_in = probe(args, kwargs)
        if stand_in is None:
            return
        if len(self._decisions) >= _MAX_DECISIONS:
            self._decisions.clear()
        self._decisions[stand_in] = Decision(ctx.key, ctx.policy.value, generation)

    def recall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Decision | None:
        """The remembered decision for these arguments, if it still holds: same
        configuration, no control block around the call."""
        if not self.remembers:
            return None
        stand_in = probe(args, kwargs)
        if stand_in is None:
            return None
        decision = self._decisions.get(stand_in)
        if decision is None or decision.generation != config.generation():
            return None
        return decision if neutral() else None

    def read(
        self,
        cache: MultiLevelCache,
        decision: Decision,
        recorders: Recorders,
        *,
        may_block: bool,
        started: float | None = None,
    ) -> tuple[Any, FirstRead | None]:
        """``(answer, None)`` for a fresh hit in tier 1, else ``(MISSING, read)`` where
        ``read`` is what tier 1 returned (``None`` when it was not read: debug events
        wanted, or a blocking tier in async code). ``started``: the call's start."""
        tier = cache.tiers[0]
        if not (may_block or tier.inline):
            return MISSING, None
        out = current_output()
        if out.debug:  # the full flow writes the lookup's debug events
            return MISSING, None
        if started is None:
            started = time.perf_counter() if out.info else 0.0
        key = decision.key
        try:
            data = tier.backend.get(key)
        except Exception as exc:
            return MISSING, FirstRead(key, None, exc)
        envelope = cache.fresh(key, data, self.codec)
        if envelope is None:
            return MISSING, FirstRead(key, data)
        saved_ms, saved_tokens = envelope.duration_ms, envelope.saved_tokens
        recorders.hit(tier.name, saved_ms, saved_tokens)
        if out.info:
            write_result(
                out,
                new_call_id(),
                self.fn,
                key,
                "hit",
                tier.name,
                decision.policy,
                started,
                saved_ms,
                saved_tokens,
            )
        value = envelope.value
        return (value if self.adapter_on_hit is None else self.adapter_on_hit(value)), None
