"""Cache keys: ``{prefix}:{namespace}:{digest}``, memcached-safe, from canonical JSON.

Pure functions, no I/O. The digest is a 128-bit BLAKE2b of the canonical JSON of
the function's qualified name and its keyed arguments.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "KEY_SCHEMA",
    "KeyMemo",
    "UnkeyableError",
    "canonical_json",
    "make_key",
    "namespace_part",
]

KEY_SCHEMA = 2
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


def _check_keys(obj: Any) -> None:
    """JSON would turn ``{1: x}`` into ``{"1": x}``: refuse non-string keys instead
    of letting two different arguments share a key."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if type(key) is not str:
                raise UnkeyableError(f"cannot build a cache key from a {type(key).__name__} key")
            if isinstance(value, (dict, list, tuple)):
                _check_keys(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            if isinstance(value, (dict, list, tuple)):
                _check_keys(value)


def canonical_json(data: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, no NaN; models by ``model_dump``.

    Raises `UnkeyableError` for anything that has no canonical form.
    """
    try:
        _check_keys(data)
        text = _dumps(data)
    except UnkeyableError:
        raise
    except Exception as exc:  # a failing model_dump or __cache_key__ included
        raise UnkeyableError(f"cannot build a cache key: {type(exc).__name__}: {exc}") from exc
    if "-0.0" in text:  # rare: only then pay for a second pass
        text = _dumps(_normalize_floats(data))
    return text


def namespace_part(namespace: str | None) -> str:
    """The namespace as it enters a key: plain names as they are, any other text as
    ``~`` and a digest of itself (``~`` never occurs in a plain name)."""
    if namespace is None or namespace == "":
        return GLOBAL_NAMESPACE
    if _PLAIN_NAMESPACE.fullmatch(namespace):
        return namespace
    digest = hashlib.blake2b(namespace.encode("utf-8", "surrogatepass"), digest_size=16)
    return "~" + digest.hexdigest()


_SCALARS = frozenset({str, int, float, bool, type(None)})
_MEMO_SIZE = 4096
_MEMO_TEXT = 4096


def _probe(arguments: Mapping[str, Any], namespace: str | None) -> tuple[Any, ...] | None:
    """A hashable stand-in for the arguments when they are short scalars (types kept,
    so 1, 1.0 and True stay apart), else ``None``."""
    parts: list[Any] = [namespace]
    for name, value in arguments.items():
        kind = type(value)
        if kind not in _SCALARS or (kind is str and len(value) > _MEMO_TEXT):
            return None
        parts.append((name, kind, value))
    return tuple(parts)


class KeyMemo:
    """The keys one function's calls already had: a repeated call of short scalar
    arguments -- the common ``chat(prompt, model)`` -- skips JSON and hashing."""

    __slots__ = ("_keys", "fn")

    def __init__(self, fn: str) -> None:
        self.fn = fn
        self._keys: dict[tuple[Any, ...], str] = {}

    def key(self, arguments: Mapping[str, Any], namespace: str | None) -> str:
        probe = _probe(arguments, namespace)
        if probe is not None:
            key = self._keys.get(probe)
            if key is not None:
                return key
        key = make_key(self.fn, arguments, namespace)
        if probe is not None:
            if len(self._keys) >= _MEMO_SIZE:
                self._keys.clear()
            self._keys[probe] = key
        return key


def make_key(fn: str, arguments: Mapping[str, Any], namespace: str | None = None) -> str:
    """The cache key of calling ``fn`` (a qualified name) with ``arguments``."""
    payload = canonical_json([fn, arguments])
    digest = hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=16)
    return f"{PREFIX}:{namespace_part(namespace)}:{digest.hexdigest()}"
