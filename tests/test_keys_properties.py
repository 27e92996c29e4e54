"""Keys as properties: equal arguments share a key, different ones never do, every key is safe.

What "equal" means here: two arguments are equal when they are the same JSON value --
the same JSON type (``True``, ``1``, ``1.0`` and ``"1"`` are four different arguments;
lists and tuples are both JSON arrays) and equal contents, with dict order ignored and
``-0.0`` equal to ``0.0`` (as Python compares them). ``NaN`` is not equal to itself,
so there is no "equal call" to share an answer with: an argument holding ``NaN`` (or
``±inf``, which JSON cannot write either) makes the call *unkeyable*, and the
property checked for it is that such a call always runs uncached, with a
``cache.bypass`` warning, never a guessed key.
"""

from __future__ import annotations

import math
import operator
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.keys import UnkeyableError, make_key, namespace_part

from .support.llm import Counter

MEMCACHED_SAFE = re.compile(r"[\x21-\x7e]{1,250}")
FEW = settings(max_examples=40, deadline=None)
FEWER = settings(max_examples=20, deadline=None)

# Any code point: the BMP, lone surrogates (category Cs, which hypothesis leaves out
# unless asked) and astral characters (emoji, CJK extension planes).
CHARS = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.characters(min_codepoint=0x10000),
)
TEXT = st.text(CHARS, max_size=30)
HUGE_TEXT = st.builds(
    operator.mul, st.text(CHARS, min_size=1, max_size=3), st.integers(10_000, 100_000)
)
FINITE = st.floats(allow_nan=False, allow_infinity=False)  # -0.0, subnormals, 1e308...
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), FINITE, TEXT)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=15,
)
# A small alphabet of look-alikes, so that pairs of arguments are often *nearly* equal.
LOOKALIKES = st.sampled_from([0, 1, 0.0, 1.0, True, False, None, "", "0", "1", "true", "null"])
NEAR_JSON: st.SearchStrategy[Any] = st.recursive(
    LOOKALIKES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "1", ""]), inner, max_size=3)
    ),
    max_leaves=8,
)
ARGUMENT_NAMES = st.sampled_from(["prompt", "model", "options", "messages", "temperature"])
ARGUMENTS = st.dictionaries(ARGUMENT_NAMES, JSON | HUGE_TEXT, min_size=1, max_size=4)
PLAIN_NAMESPACES = st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
NAMESPACES = st.one_of(
    PLAIN_NAMESPACES,
    st.text(CHARS, min_size=1, max_size=80),
    st.builds(operator.mul, st.text(CHARS, min_size=1, max_size=4), st.integers(100, 2_500)),
    st.builds(" ".join, st.lists(PLAIN_NAMESPACES, min_size=2, max_size=3)),
)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values (see the module docstring)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def reshaped(value: Any) -> Any:
    """An equal value built differently: dicts in reverse order, zeros with the other sign."""
    if isinstance(value, dict):
        return {k: reshaped(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reshaped(v) for v in value]
    if isinstance(value, float) and value == 0.0:
        return -value
    return value


def key_of(arguments: dict[str, Any], namespace: str | None = None) -> str:
    return make_key("app.chat", arguments, namespace)


def with_buried(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``inner`` hidden somewhere among ordinary siblings in a list or a dict."""
    in_list = st.builds(
        lambda xs, x, i: [*xs[:i], x, *xs[i:]], st.lists(JSON, max_size=3), inner, st.integers(0, 3)
    )
    in_dict = st.builds(
        lambda d, k, x: {**d, k: x}, st.dictionaries(TEXT, JSON, max_size=3), TEXT, inner
    )
    return in_list | in_dict


NON_FINITE_SOMEWHERE = st.recursive(NON_FINITE, with_buried, max_leaves=4)


@FEW
@given(ARGUMENTS)
@example({"prompt": "x", "t": -0.0, "o": {"b": [0.0], "a": 1}})
@example({"prompt": "Explain \U0001f600\ud800 " * 200_000})  # 2 M code points
def test_equal_arguments_give_equal_keys(arguments: dict[str, Any]) -> None:
    """The same arguments, in any dict order and with -0.0 for 0.0, give one key."""
    again = reshaped(arguments)
    assert same(arguments, again)
    assert key_of(arguments) == key_of(again)


@FEW
@given(NEAR_JSON, NEAR_JSON)
@example(1, 1.0)
@example(1, True)
@example(0, False)
@example("1", 1)
@example(None, "null")
@example([], {})
@example("", None)
@example({"a": [1]}, {"a": [1.0]})
def test_different_arguments_give_different_keys(a: Any, b: Any) -> None:
    """Arguments that are not the same JSON value never share a key."""
    if same(a, b):
        assert key_of({"options": a}) == key_of({"options": b})
    else:
        assert key_of({"options": a}) != key_of({"options": b})


@FEW
@given(JSON, JSON)
@example("\ud83d\ude00", "\U0001f600")  # a surrogate pair is not the astral character
@example("\ud800", "\udc00")
@example("é", "e\u0301")  # no Unicode normalization: different code points, different text
def test_different_values_anywhere_give_different_keys(a: Any, b: Any) -> None:
    """Different values of any shape, text with surrogates or astral characters included."""
    if not same(a, b):
        assert key_of({"prompt": "p", "options": a}) != key_of({"prompt": "p", "options": b})


@FEWER
@given(ARGUMENTS)
def test_the_function_and_every_argument_name_count(arguments: dict[str, Any]) -> None:
    """Another function, or the same value under another argument name, is another key."""
    assert make_key("app.chat", arguments) != make_key("app.chat2", arguments)
    renamed = {f"{name}_": value for name, value in arguments.items()}
    assert key_of(arguments) != key_of(renamed)


@FEW
@given(ARGUMENTS, st.none() | NAMESPACES)
def test_every_key_is_memcached_safe(arguments: dict[str, Any], namespace: str | None) -> None:
    """Any arguments and namespace give printable ASCII without spaces, at most 250 bytes."""
    key = key_of(arguments, namespace)
    assert MEMCACHED_SAFE.fullmatch(key), key
    assert len(key.encode()) <= 250


@FEW
@given(NAMESPACES, NAMESPACES)
@example("tenant a", "tenant_a")
@example("Alice", "alice")
@example("x" * 64, "x" * 65)
@example("~abc", "abc")
@example("\ud83d\ude00", "\U0001f600")
@example("é" * 10_000, "é" * 10_001)
def test_distinct_namespaces_never_share_a_key(first: str, second: str) -> None:
    """Namespaces of any text (unicode, spaces, 10 kB) map safely and distinctly."""
    part = namespace_part(first)
    assert MEMCACHED_SAFE.fullmatch(part) and ":" not in part
    if first != second:
        assert part != namespace_part(second)
        assert key_of({"prompt": "p"}, first) != key_of({"prompt": "p"}, second)
    else:
        assert part == namespace_part(second)


def test_plain_namespaces_appear_as_themselves_and_others_as_digests() -> None:
    """A short plain namespace is readable in the key; any other text is only a digest."""
    assert key_of({}, "tenant-42").split(":")[1] == "tenant-42"
    hidden = key_of({}, "alice@example.com").split(":")[1]
    assert re.fullmatch(r"~[0-9a-f]{32}", hidden) and "alice" not in hidden
    assert key_of({}, None) == key_of({}, "")  # both mean the global namespace


def test_a_namespace_named_like_the_global_marker_is_still_distinct() -> None:
    """A tenant named ``_`` never shares entries with calls that have no namespace."""
    assert key_of({"prompt": "p"}, "_") != key_of({"prompt": "p"}, None)


@pytest.mark.parametrize(
    ("a", "b"),
    [({1: "x"}, {"1": "x"}), ({True: "x"}, {"true": "x"}), ({None: "x"}, {"null": "x"})],
)
def test_non_string_dict_keys_are_not_confused_with_strings(
    a: dict[Any, str], b: dict[str, str]
) -> None:
    """A dict with non-string keys is never keyed like one with string keys."""
    try:
        first = key_of({"options": a})
    except UnkeyableError:
        return  # refusing the argument (the call runs uncached) is right too
    assert first != key_of({"options": b})


@FEW
@given(NON_FINITE_SOMEWHERE)
def test_nan_or_infinity_anywhere_is_unkeyable(value: Any) -> None:
    """NaN and ±inf have no canonical JSON: the arguments have no key at all."""
    with pytest.raises(UnkeyableError):
        key_of({"prompt": "p", "options": value})


@FEWER
@given(NON_FINITE_SOMEWHERE)
def test_a_call_with_nan_runs_uncached_with_a_warning(value: Any) -> None:
    """A NaN/inf argument: every call reaches the function, with a ``cache.bypass`` warning."""
    llm = Counter()  # one per example (hypothesis runs the test many times)
    cache = MultiLevelCache([MemoryBackend(maxsize=10)])

    @cache_by_intent(cache=cache)
    def chat(prompt: str, options: Any) -> str:
        return llm(prompt)

    with capture_logs() as events:
        assert chat("Explain NaN", value) == "answer #1 to Explain NaN"
        assert chat("Explain NaN", value) == "answer #2 to Explain NaN"
    bypasses = [(e["reason"], e["log_level"]) for e in events if e["event"] == "cache.bypass"]
    assert bypasses == [("unkeyable_argument", "warning")] * 2
    assert all(e["key"] is None for e in events)
