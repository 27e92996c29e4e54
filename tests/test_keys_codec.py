"""Keys are canonical and memcached-safe; values round-trip through a JSON envelope."""

from __future__ import annotations

import enum
import gc
import json
import re
import tracemalloc
import uuid

import pytest
from pydantic import BaseModel

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.codec import Codec, InvalidEntry, UnsupportedValue
from llm_middleware.keys import UnkeyableError, make_key

from .support.llm import Counter

MEMCACHED_SAFE = re.compile(r"[\x21-\x7e]{1,250}")


def test_keys_ignore_dict_order_and_apply_to_equal_floats() -> None:
    """Equal arguments give one key whatever the dict order; -0.0 equals 0.0."""
    a = make_key("f", {"x": {"b": 1, "a": [1, 2]}, "t": 0.0})
    b = make_key("f", {"t": -0.0, "x": {"a": [1, 2], "b": 1}})
    assert a == b
    assert make_key("f", {"x": 1}) != make_key("g", {"x": 1})
    assert make_key("f", {"x": 1}) != make_key("f", {"x": "1"})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (2**70, 2**70 + 1),  # beyond 64 bits
        ("\ud800", "\ud801"),  # lone surrogates
        ([{"content": "x" * 3_000_000}], [{"content": "x" * 2_999_999 + "y"}]),  # huge text
        ({"t": None}, {"t": 0.0}),
        ([1e16], [1e16 + 2]),
    ],
)
def test_uncommon_values_get_stable_distinct_keys(a: object, b: object) -> None:
    """Values the fast JSON writer hands to the standard one still key exactly."""
    assert make_key("f", {"x": a}) == make_key("f", {"x": a})
    assert make_key("f", {"x": a}) != make_key("f", {"x": b})


class _Color(enum.Enum):
    RED = 1


class _Keyed(enum.Enum):
    A = 1

    def __cache_key__(self) -> str:
        return f"keyed-{self.name}"


@pytest.mark.parametrize(
    "value",
    [_Color.RED, uuid.UUID(int=1), [[[[{"deep": _Color.RED}]]]], {"t": {"u": float("nan")}}],
)
def test_values_the_standard_encoder_refuses_stay_unkeyable(value: object) -> None:
    """Enums without a key hook, UUIDs and NaN anywhere are unkeyable, as they always were."""
    with pytest.raises(UnkeyableError):
        make_key("f", {"x": value})


def test_an_enum_with_a_cache_key_is_keyed_by_it_not_by_its_value() -> None:
    """``__cache_key__`` decides an enum's key, so it never shares the key of its value."""
    assert make_key("f", {"x": _Keyed.A}) == make_key("f", {"x": "keyed-A"})
    assert make_key("f", {"x": _Keyed.A}) != make_key("f", {"x": 1})


def test_arguments_nested_too_deeply_are_unkeyable() -> None:
    """A list nested thousands deep is an unkeyable argument, not an error."""
    nested: list[object] = []
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(UnkeyableError):
        make_key("f", {"x": nested})


def test_a_huge_text_inside_messages_is_keyed_in_bounded_memory() -> None:
    """A 20 MB message in a conversation costs a few copies of itself to key, no more."""
    messages = [{"role": "user", "content": "Explain: " + "x" * 20_000_000}]
    gc.collect()
    tracemalloc.start()
    try:
        make_key("f", {"messages": messages})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 20_000_000


@pytest.mark.parametrize(
    "namespace",
    ["user-42", "émile@example.com", "has spaces and\nnewlines", "x" * 10_000, "", None],
)
def test_any_namespace_gives_a_memcached_safe_key(namespace: str | None) -> None:
    """Namespaces of any text map into printable keys of at most 250 bytes."""
    key = make_key("mod.fn", {"prompt": "ünïcode ✓ " * 1000}, namespace)
    assert MEMCACHED_SAFE.fullmatch(key), key


def test_namespace_text_cannot_collide_with_a_plain_name() -> None:
    """A digested namespace never equals a plain one (``~`` is not a plain character)."""
    plain = make_key("f", {}, "abc")
    digested = make_key("f", {}, "a b c")
    assert plain.split(":")[1] == "abc" and digested.split(":")[1].startswith("~")


class Answer(BaseModel):
    text: str
    score: float


@pytest.mark.parametrize(
    "value",
    [
        "plain text",
        {"a": [1, 2.5, None, True], "b": {"c": "d"}},
        [1, "two"],
        3,
        2.5,
        False,
        {"big": 2**80, "neg": -(2**70), "edge": 2**64},  # integers beyond 64 bits
        [0.1 + 0.2, 1e308, 5e-324, -0.0, 123456789.123456789],
        {"text": "naïve ☕ 𝄞", "escaped": '\u0000\n\t"quoted"'},
    ],
)
def test_str_and_json_values_round_trip(value: object) -> None:
    """Strings and JSON values decode to equal values of the same type."""
    codec = Codec()
    data, _ = codec.encode(value, policy="long", created=0.0, ttl=10, duration_ms=1.0)
    decoded = codec.decode(data).value
    assert repr(decoded) == repr(value)  # equal, and of the same types all the way down


def test_values_that_do_not_round_trip_are_refused() -> None:
    """Tuples, non-string keys, NaN, arbitrary objects and None are not stored."""
    for value in [(1, 2), {1: "a"}, float("nan"), object(), None, {"x": (1,)}]:
        with pytest.raises(UnsupportedValue):
            Codec().encode(value, policy="short", created=0, ttl=1, duration_ms=0)


def test_pydantic_return_annotation_round_trips(cache: MultiLevelCache, llm: Counter) -> None:
    """A function annotated to return a pydantic model gets an equal model back on a hit."""

    @cache_by_intent(cache=cache)
    def rate(prompt: str) -> Answer:
        return Answer(text=llm(prompt), score=0.5)

    first = rate("Explain gradient descent")
    second = rate("Explain gradient descent")
    assert type(second) is Answer and second == first and llm.calls == 1


def test_large_values_are_compressed_and_never_pickled() -> None:
    """Big values are stored compressed; the envelope is JSON, not pickle."""
    codec = Codec()
    value = "lorem ipsum " * 10_000
    data, _ = codec.encode(value, policy="long", created=5.0, ttl=10, duration_ms=12.0)
    assert data[:1] == b"z" and len(data) < len(value) / 10
    small, envelope = codec.encode("hi", policy="long", created=5.0, ttl=10, duration_ms=12.0)
    doc = json.loads(small)
    assert doc["schema"] == 1 and doc["type"] == "str" and doc["expires"] == 15.0
    assert codec.decode(data).value == value and envelope.duration_ms == 12.0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\x80\x04pickle", "not_envelope"),
        (b"{not json", "not_envelope"),
        (b'{"schema": 99, "type": "str", "value": "x", "policy": "long", "created": 0,'
         b' "expires": 1, "duration_ms": 0, "usage": null}', "schema_mismatch"),
        (b'{"schema": 1, "type": "builtins.eval", "value": "x", "policy": "long",'
         b' "created": 0, "expires": 1, "duration_ms": 0, "usage": null}', "unknown_type"),
        (b"z\x00\x01", "corrupt_compression"),
    ],
)  # fmt: skip
def test_invalid_entries_have_a_reason(data: bytes, reason: str) -> None:
    """Bytes that are not a current envelope are refused with a reason, never executed."""
    with pytest.raises(InvalidEntry) as info:
        Codec().decode(data)
    assert info.value.reason == reason


def test_a_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small entry that would inflate beyond the limit is invalid, not inflated."""
    import zlib

    from llm_middleware import codec

    monkeypatch.setattr(codec, "MAX_DECOMPRESSED_BYTES", 1024 * 1024)
    bomb = b"z" + zlib.compress(b"{" + b" " * (2 * 1024 * 1024), 9)
    assert len(bomb) < 10 * 1024
    with pytest.raises(InvalidEntry) as info:
        Codec().decode(bomb)
    assert info.value.reason == "too_large"
