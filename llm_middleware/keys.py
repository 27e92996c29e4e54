"""Cache keys: ``{prefix}:{namespace}:{digest}``, memcached-safe, from canonical JSON.

Pure functions, no I/O. The digest is a 128-bit BLAKE2b of the canonical JSON of
the function's qualified name and its keyed arguments.

Canonical JSON is written by orjson (sorted keys, compact), thirty times faster
than the standard library on a long conversation. Where orjson would differ, the
rules stay the standard library's: NaN, infinities and non-string dict keys make
an argument unkeyable (orjson would write ``null`` and refuse, respectively),
``-0.0`` is written as ``0.0``, and what orjson refuses or writes its own way (an
integer beyond 64 bits, a lone surrogate, an Enum or UUID) or would reserve much
memory for (a text over 1 MiB) is written by the standard library's encoder, whose
text no orjson text can equal.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from ._plain import plain_size
from .argkey import ArgumentKey, argument_key
from .bounded import BoundedMemo

__all__ = [
    "KEY_SCHEMA",
    "KeyMemo",
    "UnkeyableError",
    "canonical_bytes",
    "canonical_json",
    "make_key",
    "namespace_part",
]

KEY_SCHEMA = 3
"""Bumped whenever the key format changes, so old entries are never read wrongly."""

PREFIX = f"llmmw{KEY_SCHEMA}"
GLOBAL_NAMESPACE = "~"  # never a plain name, never a digested one
_PLAIN_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class UnkeyableError(TypeError):
    """An argument cannot be made canonical; the call runs uncached."""


def _canonical_default(obj: Any) -> Any:
    hook = getattr(obj, "__cache_key__", None)
    if hook is not None and callable(hook):
        return hook()
    dump = getattr(obj, "model_dump", None)  # pydantic v2 models
    if dump is not None and callable(dump) and not isinstance(obj, type):
        return {"__model__": type(obj).__qualname__, "data": dump(mode="json")}
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)
        except TypeError:
            pass
    raise UnkeyableError(f"cannot build a cache key from a {type(obj).__qualname__} argument")


def _normalize_floats(obj: Any) -> Any:
    """-0.0 == 0.0 in Python, so they must give one key."""
    if isinstance(obj, float):
        return 0.0 if obj == 0.0 else obj
    if isinstance(obj, dict):
        return {k: _normalize_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_normalize_floats(v) for v in obj]
    return obj


_dumps = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_canonical_default,
).encode


_HUGE_TEXT = 1 << 20
"""orjson reserves several times a string's length while writing it: texts longer
than this are written by the standard library's encoder instead."""

_LEAVES = frozenset({int, bool, type(None)})
_NESTED = (dict, list, tuple)
# orjson writes these itself (an Enum as its value, a UUID as text), where the
# standard library refuses them or asks ``__cache_key__``: theirs is the rule
_FOREIGN = (enum.Enum, uuid.UUID)


def _scan(obj: Any) -> bool:
    """Walk the containers of data that is not plain JSON data (`plain_size` judged it;
    subclasses of the built-in types, Enums, UUIDs, models and the like are keyable
    too): refuse non-string dict keys (JSON would turn ``{1: x}`` into ``{"1": x}``)
    and NaN or infinities (which orjson writes as ``null``) with `UnkeyableError`.
    ``True`` when the standard library's encoder must write ``obj``: a text longer
    than ``_HUGE_TEXT``, an Enum or a UUID."""
    if isinstance(obj, dict):
        for key in obj:
            if type(key) is not str:
                raise UnkeyableError(f"cannot build a cache key from a {type(key).__name__} key")
        values: Any = obj.values()
    elif isinstance(obj, (list, tuple)):
        values = obj
    else:
        values = (obj,)
    stdlib = False
    for value in values:
        kind = type(value)
        if kind is str:
            stdlib = stdlib or len(value) > _HUGE_TEXT
        elif kind is float:
            if not math.isfinite(value):
                raise UnkeyableError("cannot build a cache key from NaN or infinity")
        elif kind in _LEAVES:
            continue
        elif kind is dict or kind is list or kind is tuple or isinstance(value, _NESTED):
            stdlib = _scan(value) or stdlib
        elif isinstance(value, str):
            stdlib = stdlib or len(value) > _HUGE_TEXT
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise UnkeyableError("cannot build a cache key from NaN or infinity")
        elif isinstance(value, _FOREIGN):
            stdlib = True
    return stdlib


class _UseStdlib(Exception):
    """Raised inside orjson's ``default``: this value is the standard library's to write."""


def _orjson_default(obj: Any) -> Any:
    """`_canonical_default`, with what it returns held to `_scan`'s rules."""
    value = _canonical_default(obj)
    if _scan(value):
        raise _UseStdlib
    return value


# datetimes and dataclasses go to ``default`` (unkeyable unless they define
# __cache_key__), as with the standard library's encoder
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _stdlib_json(data: Any) -> str:
    """The standard library's canonical JSON."""
    try:
        text = _dumps(data)
    except UnkeyableError:
        raise
    except Exception as exc:  # a failing model_dump or __cache_key__ included
        raise UnkeyableError(f"cannot build a cache key: {type(exc).__name__}: {exc}") from exc
    if "-0.0" in text:  # rare: only then pay for a second pass
        text = _dumps(_normalize_floats(data))
    return text


def _orjson(data: Any) -> bytes:
    return orjson.dumps(data, default=_orjson_default, option=_ORJSON_OPTIONS)


def canonical_bytes(data: Any) -> bytes:
    """Canonical JSON as UTF-8: sorted keys, no spaces, no NaN; models by ``model_dump``.

    Raises `UnkeyableError` for anything that has no canonical form.
    """
    try:
        # plain JSON data whose texts fit orjson (the common case) is written as it is;
        # anything else is checked for what has no canonical form, and for its encoder
        stdlib = plain_size((data,), _HUGE_TEXT) < 0 and _scan(data)
    except RecursionError as exc:
        raise UnkeyableError("cannot build a cache key: nested too deeply") from exc
    if not stdlib:
        try:
            raw = _orjson(data)
        except (orjson.JSONEncodeError, RecursionError):
            pass  # integers beyond 64 bits, lone surrogates, a hook's failure: stdlib decides
        else:
            if b"-0.0" in raw:  # rare: only then pay for a second pass
                raw = _orjson(_normalize_floats(data))
            return raw
    return _stdlib_json(data).encode("utf-8", "surrogatepass")


def canonical_json(data: Any) -> str:
    """`canonical_bytes` as text."""
    return canonical_bytes(data).decode("utf-8", "surrogatepass")


def namespace_part(namespace: str | None) -> str:
    """The namespace as it enters a key: plain names as they are, any other text as
    ``~`` and a digest of itself (``~`` never occurs in a plain name)."""
    if namespace is None or namespace == "":
        return GLOBAL_NAMESPACE
    if _PLAIN_NAMESPACE.fullmatch(namespace):
        return namespace
    digest = hashlib.blake2b(namespace.encode("utf-8", "surrogatepass"), digest_size=16)
    return "~" + digest.hexdigest()


_MEMO_SIZE = 4096


class KeyMemo:
    """The keys one function's calls already had: a repeated call of short scalar
    arguments -- the common ``chat(prompt, model)`` -- skips JSON and hashing. Known
    by the arguments' `argument_key` (scalars only: for data it would cost the key's
    price again)."""

    __slots__ = ("_keys", "fn")

    def __init__(self, fn: str) -> None:
        self.fn = fn
        self._keys: BoundedMemo[ArgumentKey, str] = BoundedMemo(_MEMO_SIZE)

    def key(self, arguments: Mapping[str, Any], namespace: str | None) -> str:
        probe = argument_key((namespace,), arguments, data=False)
        if probe is not None:
            key = self._keys.get(probe)
            if key is not None:
                return key
        key = make_key(self.fn, arguments, namespace)
        if probe is not None:
            self._keys.put(probe, key)
        return key


def make_key(fn: str, arguments: Mapping[str, Any], namespace: str | None = None) -> str:
    """The cache key of calling ``fn`` (a qualified name) with ``arguments``."""
    digest = hashlib.blake2b(canonical_bytes([fn, arguments]), digest_size=16)
    return f"{PREFIX}:{namespace_part(namespace)}:{digest.hexdigest()}"
