"""The short path of a repeated hit: its decision remembered, its answer fresh in tier 1.

The chain's steps decide a call from its arguments, the process configuration and
the controls around it. For a plain function called with short scalar arguments
(the common ``chat(prompt, model=...)``) or with plain JSON data (``chat(messages)``:
lists and dicts of strings and numbers, known by a digest of their JSON) that
decision -- the key and the policy -- is remembered. When the same arguments come
again, with no control block around the call, the same configuration, and debug
events not wanted, tier 1 is read at once; a fresh, valid entry there is the
answer, with the same counters and the same ``cache.result`` event as the full
flow. Anything else (absent, stale or invalid entry, failing tier) goes on to the
full flow, handing it what tier 1 returned so that it is not read twice. The full
flow gives the same answer either way; this only skips work whose outcome is
already known.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple

import orjson

from . import config, listeners
from .chain import CallContext
from .codec import Codec
from .control import neutral
from .keys import MEMO_TEXT, SCALARS
from .stats import Recorders
from .tiers import FirstRead, MultiLevelCache
from .trace import current_output, new_call_id, write_result

__all__ = ["MEMO_DATA", "MISSING", "Decision", "Shortcut", "fingerprint", "probe"]

MISSING: Any = object()
"""`Shortcut.read`'s "no answer here": take the full flow."""

_MAX_DECISIONS = 4096


def probe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
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


MEMO_DATA = 16 * 1024
"""Arguments larger than this (one per value, plus the characters of its text) are not
fingerprinted: their calls are decided by the steps. A fingerprint costs about what
their key costs and saves the rest of the steps, which weigh less the larger the
data; a call over the limit pays for the walk up to it."""

_PLAIN_LEAVES = frozenset({int, bool, type(None)})


def _plain(values: Iterable[Any], budget: int) -> int:
    """``budget`` less the size of ``values`` (1 for each value, plus the length of
    each text), or -1: when something in them is not plain JSON data of exact built-in
    types (dicts with str keys, lists, tuples, str, int, bool, None, finite floats), or
    the size runs over the budget (so the walk is bounded too)."""
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
                    budget = _plain((item,), budget - len(key))
                if budget < 0:
                    return -1
        elif kind is list or kind is tuple:
            budget = _plain(value, budget - 1)
        elif kind is float:
            if value - value != 0.0:  # NaN or an infinity (JSON would write null)
                return -1
            budget -= 1
        elif kind in _PLAIN_LEAVES:
            budget -= 1
        else:
            return -1
        if budget < 0:
            return -1
    return budget


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
        if _plain((args, kwargs), MEMO_DATA) < 0:
            return None
        data = orjson.dumps((args, kwargs))
    except Exception:
        return None
    return hashlib.blake2b(data, digest_size=16).digest()


class Decision(NamedTuple):
    """What the steps decided for a call: its key and its policy's name (as events
    write it)."""

    key: str
    policy: str
    generation: int = 0


class Shortcut:
    """The short path of one decorated function's hits.

    `read` answers a fresh hit in tier 1 for a decided call. `recall` and `remember`
    keep the decisions of calls that `probe` finds a stand-in for -- only for
    functions whose decision depends on nothing but the arguments, the configuration
    and the controls (``remembers``: no user steps, no namespace or prompt reader
    callables, scalar defaults; the caller remembers only decisions made by
    `IntentRules`, never by a custom classifier).
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
        self._decisions: dict[Hashable, Decision] = {}

    def stand_in(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
        """What `recall` and `remember` know these arguments by (`probe`); ``None``
        when this function's decisions are not remembered, or inside a control block
        (``bypass``, ``refresh``, ``use_policy``), whose decisions are never kept nor
        taken."""
        return probe(args, kwargs) if self.remembers and neutral() else None

    def remember(
        self,
        stand_in: Hashable | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ctx: CallContext,
        generation: int,
    ) -> None:
        """Keep the decision the steps made for the arguments ``stand_in`` stands for,
        if it is cacheable. ``generation``: the configuration's, read before the steps
        ran. Data that another thread changed while the steps ran (its fingerprint is
        no longer ``stand_in``) is not kept: its key may be the other content's."""
        if stand_in is None or ctx.key is None or ctx.policy is None or ctx.skip is not None:
            return
        if type(stand_in) is bytes and fingerprint(args, kwargs) != stand_in:
            return
        if len(self._decisions) >= _MAX_DECISIONS:
            self._decisions.clear()
        self._decisions[stand_in] = Decision(ctx.key, ctx.policy.value, generation)

    def recall(self, stand_in: Hashable | None) -> Decision | None:
        """The remembered decision for the arguments ``stand_in`` stands for, if it
        was made under the same configuration."""
        if stand_in is None:
            return None
        decision = self._decisions.get(stand_in)
        if decision is None or decision.generation != config.generation():
            return None
        return decision

    def read(
        self,
        cache: MultiLevelCache,
        decision: Decision,
        recorders: Recorders,
        *,
        may_block: bool,
        started: float | None = None,
        arguments: tuple[tuple[Any, ...], dict[str, Any]] | None = None,
    ) -> tuple[Any, FirstRead | None]:
        """``(answer, None)`` for a fresh hit in tier 1, else ``(MISSING, read)`` where
        ``read`` is what tier 1 returned (``None`` when it was not read: debug events
        wanted, or a blocking tier in async code). ``started``: the call's start;
        ``arguments``: its ``(args, kwargs)``, for the listeners."""
        tier = cache.tiers[0]
        if not (may_block or tier.inline):
            return MISSING, None
        out = current_output()
        if out.debug:  # the full flow writes the lookup's debug events
            return MISSING, None
        if started is None:
            started = time.perf_counter() if out.info or listeners.ACTIVE else 0.0
        key = cache.generations.known(decision.key)
        if key is None:  # generations to read again: the full flow reads them
            return MISSING, None
        try:
            data = tier.backend.get(key)
        except Exception as exc:
            return MISSING, FirstRead(key, None, exc)
        envelope = cache.fresh(key, data, self.codec)
        if envelope is None:
            return MISSING, FirstRead(key, data)
        saved_ms, saved_tokens = envelope.duration_ms, envelope.saved_tokens
        recorders.hit(tier.name, saved_ms, saved_tokens, decision.policy)
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
        if listeners.ACTIVE:
            listeners.notify(self.fn, decision.key, "hit", tier.name, decision.policy, started,
                             saved_ms, saved_tokens, None, value, _by_name(arguments))  # fmt: skip
        return (value if self.adapter_on_hit is None else self.adapter_on_hit(value)), None


def _by_name(arguments: tuple[tuple[Any, ...], dict[str, Any]] | None) -> dict[str, Any]:
    """A call's arguments for the listeners: keywords by name, positional ones by
    position (``"0"``, ``"1"``, ...)."""
    if arguments is None:
        return {}
    args, kwargs = arguments
    return {**{str(n): value for n, value in enumerate(args)}, **kwargs}
