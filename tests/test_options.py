"""The decorator's options: one validated object, spelled the same everywhere."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

from llm_middleware import CachePolicy, DecorationError, cache_by_intent
from llm_middleware.decorator import CacheOptions, decorate


def test_the_typed_overload_offers_exactly_the_options() -> None:
    """The keywords a type checker sees for ``@cache_by_intent(...)`` are the options."""
    overloads = typing.get_overloads(cache_by_intent)
    with_options = [o for o in overloads if len(inspect.signature(o).parameters) > 1]
    assert len(with_options) == 1
    keywords = [
        name
        for name, parameter in inspect.signature(with_options[0]).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert keywords == [field.name for field in dataclasses.fields(CacheOptions)]


def test_a_misspelled_option_is_refused_at_once_naming_the_valid_ones() -> None:
    """``stale_tll=`` is a `DecorationError` when the decorator is made, listing options."""
    with pytest.raises(DecorationError, match="stale_tll") as raised:
        cache_by_intent(stale_tll=10)  # type: ignore[call-overload]
    assert "stale_ttl" in str(raised.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stale_ttl": -1}, "stale_ttl"),
        ({"lock": "yes"}, "lock="),
        ({"ignore": "client"}, "ignore="),
        ({"steps": [42]}, "steps="),
        ({"rules": 42}, "rules="),
        ({"cache": "memory://"}, "cache="),
        ({"prompt_arg": 3}, "prompt_arg="),
        ({"namespace": 3}, "namespace="),
        ({"name": " "}, "name="),
        ({"namespace_required": "yes"}, "namespace_required="),
        ({"namespace_required": 1}, "namespace_required="),
        ({"semantic": 0.9}, "semantic="),
        ({"tiers_for": {"long": 1}}, "tiers_for="),
        ({"tiers_for": {CachePolicy.LONG: 1.5}}, "tiers_for"),
    ],
)
def test_bad_option_values_raise_before_any_function(
    options: dict[str, object], message: str
) -> None:
    """Each bad option value is refused by the decorator call itself."""
    with pytest.raises(DecorationError, match=message):
        cache_by_intent(**options)  # type: ignore[call-overload]


def test_options_are_frozen_and_normalized() -> None:
    """``lock=True`` becomes a `StampedeLock`; ``ignore`` a tuple; nothing can change later."""
    options = CacheOptions.of(lock=True, ignore=["client"], stale_ttl=5)
    assert options.lock is not None and options.ignore == ("client",)
    assert options.stale_ttl == 5.0 and isinstance(options.stale_ttl, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.stale_ttl = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):  # the policies' depths too
        options.tiers_for[CachePolicy.LONG] = 1  # type: ignore[index]


def test_decorate_takes_an_options_object_or_keywords() -> None:
    """Integrations pass a `CacheOptions`, or keywords, to the same effect."""

    def ask(prompt: str) -> str:
        return prompt.upper()

    by_object = decorate(ask, options=CacheOptions.of(ignore=()))
    by_keywords = decorate(ask, ignore=())
    assert by_object("Explain it") == by_keywords("Explain it") == "EXPLAIN IT"
