"""Values: JSON in a versioned envelope, compressed when large. Never pickle.

A stored entry decodes only to a type this module knows: ``str``, JSON data, the
wrapped function's return-annotation pydantic model, or a type registered with
`register_type` (the OpenAI integration registers its response models). The
stored data names a *tag* from that registry; it never names a class to import.
"""

from __future__ import annotations

import importlib
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._plain import is_plain
from .bounded import BoundedMemo

__all__ = [
    "ENVELOPE_SCHEMA",
    "Codec",
    "Envelope",
    "InvalidEntry",
    "UnsupportedValue",
    "register_type",
]

ENVELOPE_SCHEMA = 1
_PLAIN = b"{"[0]
_ZLIB = b"z"[0]


MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024
"""No stored entry inflates beyond this, whatever its tier's own limit."""
INFLATE_FACTOR = 4
"""A tier's default inflation limit is this many times its ``max_value_bytes``."""
DEFAULT_INFLATE_LIMIT = 32 * 1024 * 1024
"""The inflation limit of a tier without ``max_value_bytes`` (nor ``max_inflated_bytes``)."""

# Envelope fields out of these ranges are not what the codec writes: an entry planted
# with them is a miss (``out_of_range``), so that nothing a hit computes from them --
# rounding a duration, summing saved time -- can overflow or mislead.
MAX_TIMESTAMP = 1e11  # seconds: the year 5138
MAX_DURATION_MS = 1e9  # about eleven and a half days
MAX_TOKENS = 10**12
MAX_POLICY_CHARS = 64


def inflate_limit(max_value_bytes: int | None, max_inflated_bytes: int | None = None) -> int:
    """How far a tier's compressed entries may inflate: ``max_inflated_bytes`` when
    set, else `INFLATE_FACTOR` times ``max_value_bytes`` (4 MiB for memcached's
    1 MiB items), else `DEFAULT_INFLATE_LIMIT`; never above `MAX_DECOMPRESSED_BYTES`."""
    if max_inflated_bytes is not None:
        limit = max_inflated_bytes
    elif max_value_bytes is not None:
        limit = INFLATE_FACTOR * max_value_bytes
    else:
        limit = DEFAULT_INFLATE_LIMIT
    return max(1, min(limit, MAX_DECOMPRESSED_BYTES))


_MEMO_SIZE = 256
_MEMO_BYTES = 64 * 1024


class UnsupportedValue(TypeError):
    """A return value the codec cannot store faithfully; the call is not cached."""


class InvalidEntry(ValueError):
    """Stored bytes that are not a valid envelope of the current schema."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _TypeHandler:
    tag: str
    match: Callable[[Any], bool]
    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]
    usage: Callable[[Any], dict[str, int] | None]


_HANDLERS: dict[str, _TypeHandler] = {}
_INTEGRATIONS = {"openai": "llm_middleware.openai", "anthropic": "llm_middleware.anthropic"}
"""SDK packages whose answer types an integration module registers when imported:
a function returning them needs no annotation, nor the integration imported."""


def _integrate(root: str) -> bool:
    """Import the integration for SDK package ``root`` once; whether it registered."""
    module = _INTEGRATIONS.pop(root, None)
    if module is None:
        return False
    try:
        importlib.import_module(module)
    except ImportError:  # the SDK is not installed: nothing to decode
        return False
    return True


def register_type(
    tag: str,
    match: Callable[[Any], bool],
    dump: Callable[[Any], Any],
    load: Callable[[Any], Any],
    usage: Callable[[Any], dict[str, int] | None] = lambda value: None,
) -> None:
    """Teach the codec a type: values for which ``match`` is true are stored as
    ``dump(value)`` (JSON data) and read back with ``load``; ``usage`` reports the
    token usage the answer cost (for ``saved_tokens``)."""
    _HANDLERS[tag] = _TypeHandler(tag, match, dump, load, usage)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded entry: the value and what is known about the call that made it."""

    value: Any
    policy: str
    created: float
    expires: float
    duration_ms: float
    usage: dict[str, int] | None
    saved_tokens: int = field(init=False)
    """``usage["total_tokens"]`` (0 without usage): what a hit on this entry saves."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "saved_tokens", int((self.usage or {}).get("total_tokens", 0)))

    def remaining(self, now: float) -> float:
        return self.expires - now


class _OutOfRange(ValueError):
    """A well-typed envelope field with a value the codec never writes."""


def _finite(value: object, low: float, high: float) -> float:
    """A stored number within ``[low, high]``."""
    if type(value) not in (int, float):
        raise TypeError("not a number")
    number = float(value)  # type: ignore[arg-type]
    if not low <= number <= high:  # NaN and the infinities fail too
        raise _OutOfRange(f"{value!r} is not within [{low}, {high}]")
    return number


def _usage(value: object) -> dict[str, int] | None:
    """Token usage as stored: None, or token counts by name, each within range."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and type(v) is int for k, v in value.items()
    ):
        raise TypeError("usage is not token counts")
    if not all(0 <= v <= MAX_TOKENS for v in value.values()):
        raise _OutOfRange("a token count out of range")
    return value


def _policy(value: object) -> str:
    if type(value) is not str:
        raise TypeError("policy is not text")
    if len(value) > MAX_POLICY_CHARS:
        raise _OutOfRange("policy name too long")
    return value


def _is_model_class(tp: object) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_validate") and hasattr(tp, "model_dump")


class Codec:
    """Encodes answers into envelopes and back.

    ``result_type`` is the wrapped function's return annotation; when it is a
    pydantic model class, values of exactly that class are stored and restored.
    ``accepts``: the type tags an entry may carry to be an answer (``None``: any);
    an integration names the types its callers can use, so that an entry of another
    type under its key (one written by someone else into a shared tier) is a miss
    with reason ``wrong_type``, never a value the caller's code cannot handle.
    """

    __slots__ = ("_accepts", "_memo", "_model", "compress_min_bytes")

    def __init__(
        self,
        result_type: object = None,
        *,
        compress_min_bytes: int = 4096,
        accepts: frozenset[str] | None = None,
    ) -> None:
        self._model: Any = result_type if _is_model_class(result_type) else None
        self.compress_min_bytes = compress_min_bytes
        self._accepts = accepts
        self._memo: BoundedMemo[bytes, tuple[Envelope, int]] = BoundedMemo(_MEMO_SIZE)

    def _dump_value(self, value: Any) -> tuple[str, Any, dict[str, int] | None]:
        if type(value) is str:
            return "str", value, None
        for handler in _HANDLERS.values():
            if handler.match(value):
                return handler.tag, handler.dump(value), handler.usage(value)
        if self._model is not None and type(value) is self._model:
            return "model", value.model_dump(mode="json"), None
        if _integrate(type(value).__module__.partition(".")[0]):
            return self._dump_value(value)
        if value is None:
            raise UnsupportedValue("a None result is not cached")
        if not is_plain(value):  # tuples, enums, Counter, non-str keys...: not faithful
            raise UnsupportedValue(
                f"cannot store a {type(value).__qualname__} result: only str, JSON data of "
                "built-in types and known models read back equal and of the same type"
            )
        return "json", value, None

    def encode(
        self,
        value: Any,
        *,
        policy: str,
        created: float,
        ttl: float,
        duration_ms: float,
        usage: dict[str, int] | None = None,
    ) -> tuple[bytes, Envelope]:
        """The stored bytes for ``value``, and the envelope they decode to."""
        data, envelope, _ = self.encode_sized(
            value, policy=policy, created=created, ttl=ttl, duration_ms=duration_ms, usage=usage
        )
        return data, envelope

    def encode_sized(
        self,
        value: Any,
        *,
        policy: str,
        created: float,
        ttl: float,
        duration_ms: float,
        usage: dict[str, int] | None = None,
    ) -> tuple[bytes, Envelope, int | None]:
        """`encode`, plus the size the stored bytes inflate to when they are
        compressed (``None`` when not): a tier whose inflation limit is lower is not
        offered them, so that no entry stored is one the tier's reads refuse."""
        tag, data, found_usage = self._dump_value(value)
        envelope = Envelope(
            value, policy, created, created + ttl, duration_ms, usage or found_usage
        )
        doc = {
            "schema": ENVELOPE_SCHEMA,
            "type": tag,
            "policy": policy,
            "created": created,
            "expires": envelope.expires,
            "duration_ms": round(min(max(duration_ms, 0.0), MAX_DURATION_MS), 3),  # in range
            "usage": envelope.usage,
            "value": data,
        }
        raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        if len(raw) >= self.compress_min_bytes:
            packed = b"z" + zlib.compress(raw, 6)
            if len(packed) < len(raw):
                return packed, envelope, len(raw)
        return raw, envelope, None

    def decode(self, data: bytes, limit: int = MAX_DECOMPRESSED_BYTES) -> Envelope:
        """The envelope stored in ``data``; `InvalidEntry` when it is not one, or when
        it inflates beyond ``limit`` bytes (``too_large``: no more than ``limit`` is
        ever allocated for it).

        Envelopes of immutable values (strings) are remembered by their bytes: a hit
        on the same stored entry is then a dict lookup (bytes cache their hash), and
        every caller still gets an equal, unshareable-by-mutation value."""
        remembered = self._memo.get(data)
        if remembered is not None and remembered[1] <= limit:
            return remembered[0]
        return self.decode_sized(data, limit)[0]

    def decode_sized(
        self, data: bytes, limit: int = MAX_DECOMPRESSED_BYTES
    ) -> tuple[Envelope, int | None]:
        """`decode`, plus the size ``data`` inflated to (``None``: not compressed)."""
        remembered = self._memo.get(data)
        if remembered is not None:
            envelope, inflated = remembered
            if inflated > limit:
                raise InvalidEntry("too_large")
            return envelope, inflated or None
        envelope, size = self._decode(data, min(limit, MAX_DECOMPRESSED_BYTES))
        if type(envelope.value) is str and len(data) <= _MEMO_BYTES:
            self._memo.put(data, (envelope, size or 0))
        return envelope, size

    def _decode(self, data: bytes, limit: int) -> tuple[Envelope, int | None]:
        if not data:
            raise InvalidEntry("empty")
        inflated = None
        if data[0] == _ZLIB:
            inflate = zlib.decompressobj()
            try:
                data = inflate.decompress(data[1:], limit)
            except zlib.error as exc:
                raise InvalidEntry("corrupt_compression") from exc
            if inflate.unconsumed_tail:  # a decompression bomb, or over the tier's limit
                raise InvalidEntry("too_large")
            if not data or not inflate.eof:  # empty, or truncated (no complete stream)
                raise InvalidEntry("corrupt_compression")
            inflated = len(data)
        if data[0] != _PLAIN:
            raise InvalidEntry("not_envelope")
        try:
            doc = json.loads(data)
            schema, tag, raw = doc["schema"], doc["type"], doc["value"]
            created = _finite(doc["created"], 0.0, MAX_TIMESTAMP)
            envelope_fields = (
                _policy(doc["policy"]),
                created,
                _finite(doc["expires"], created, MAX_TIMESTAMP),
                _finite(doc["duration_ms"], 0.0, MAX_DURATION_MS),
                _usage(doc["usage"]),
            )
        except _OutOfRange as exc:
            raise InvalidEntry("out_of_range") from exc
        except (ValueError, KeyError, TypeError, RecursionError, OverflowError) as exc:
            raise InvalidEntry("not_envelope") from exc
        if schema != ENVELOPE_SCHEMA:
            raise InvalidEntry("schema_mismatch")
        if self._accepts is not None and tag not in self._accepts:
            raise InvalidEntry("wrong_type")
        return Envelope(self._load_value(tag, raw), *envelope_fields), inflated

    def _load_value(self, tag: object, raw: Any) -> Any:
        try:
            if tag == "str" and type(raw) is str:
                return raw
            if tag == "json":
                return raw
            if tag == "model" and self._model is not None:
                return self._model.model_validate(raw)
            handler = _HANDLERS.get(tag) if isinstance(tag, str) else None
            if handler is None and isinstance(tag, str) and _integrate(tag.partition(".")[0]):
                handler = _HANDLERS.get(tag)
            if handler is not None:
                return handler.load(raw)
        except Exception as exc:
            raise InvalidEntry("bad_value") from exc
        raise InvalidEntry("unknown_type")
