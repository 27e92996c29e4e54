"""Who a decorated callable is: closures made by one factory, functools.partial, callable
instances, and the explicit ``name=``."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import pytest

from llm_middleware import DecorationError, MultiLevelCache, cache_by_intent

from .support.llm import Counter


def make_bot(cache: MultiLevelCache, system: str) -> Any:
    @cache_by_intent(cache=cache)
    def ask(prompt: str) -> str:
        return f"{system} says: {prompt}"

    return ask


def test_closures_made_by_one_factory_do_not_share_answers(cache: MultiLevelCache) -> None:
    """The lawyer bot is not served the pirate bot's answer: a closure's captured
    plain data joins its identity."""
    pirate = make_bot(cache, "You are a pirate")
    lawyer = make_bot(cache, "You are a lawyer")
    assert pirate("Explain contracts") == "You are a pirate says: Explain contracts"
    assert lawyer("Explain contracts") == "You are a lawyer says: Explain contracts"
    again = make_bot(cache, "You are a pirate")
    assert again("Explain contracts") == "You are a pirate says: Explain contracts"
    assert cache.stats()["hits"] == {"L1": 1}  # the second pirate, from the first one's entry


def test_captured_values_are_read_once_at_decoration(cache: MultiLevelCache) -> None:
    """A later rebinding of a captured variable is not seen by the identity (documented)."""
    persona = {"role": "pirate", "tone": ["rough"]}

    @cache_by_intent(cache=cache)
    def ask(prompt: str) -> str:
        return f"{persona['role']}: {prompt}"

    assert ask("Explain ships") == "pirate: Explain ships"
    persona = {"role": "lawyer", "tone": []}
    assert ask("Explain ships") == "pirate: Explain ships"  # the entry made before


class Client:
    def complete(self, text: str) -> str:
        return f"completed {text}"


def test_a_closure_capturing_an_object_is_warned_about_naming_name_and_namespace(
    cache: MultiLevelCache,
) -> None:
    from llm_middleware import CacheIdentityWarning

    client = Client()
    with pytest.warns(CacheIdentityWarning, match=r"client.*name='\.\.\.'.*namespace='\.\.\.'"):

        @cache_by_intent(cache=cache)
        def ask(prompt: str) -> str:
            return client.complete(prompt)

    with warnings.catch_warnings():
        warnings.simplefilter("error")

        @cache_by_intent(cache=cache, name="bots.client")
        def named(prompt: str) -> str:
            return client.complete(prompt)

        @cache_by_intent(cache=cache, namespace="client-a")
        def spaced(prompt: str) -> str:
            return client.complete(prompt)

        @cache_by_intent(cache=cache)
        def uses_code(prompt: str) -> str:  # captures a function and a class: code
            return str(functools.reduce(lambda a, b: a + b, [prompt], "")) + Client.__name__

    assert ask("Explain x") == named("Explain x") == spaced("Explain x")


def test_name_is_an_explicit_cache_identity(cache: MultiLevelCache) -> None:
    """Two functions of one name share entries; the name shows in events."""

    @cache_by_intent(cache=cache, name="bots.shared")
    def first(prompt: str) -> str:
        return "first"

    @cache_by_intent(cache=cache, name="bots.shared")
    def second(prompt: str) -> str:
        return "second"

    assert first("Explain x") == "first"
    assert second("Explain x") == "first"
    with pytest.raises(DecorationError, match="name="):
        cache_by_intent(name="")(lambda prompt: prompt)


def answer(prompt: str, model: str = "small", style: str = "plain") -> str:
    return f"{model}/{style}: {prompt}"


def persona_answer(system: str, prompt: str) -> str:
    return f"{system}: {prompt}"


async def aanswer(prompt: str, model: str = "small") -> str:
    return f"{model}: {prompt}"


def test_a_functools_partial_is_cached_by_its_function_and_bound_arguments(
    cache: MultiLevelCache,
) -> None:
    """Decorating a partial works (no AttributeError on ``__qualname__``); partials of
    one function with different bound arguments keep their answers apart."""
    large = cache_by_intent(cache=cache)(functools.partial(answer, model="large"))
    small = cache_by_intent(cache=cache)(functools.partial(answer, model="small"))
    assert large("Explain x") == "large/plain: Explain x"
    assert large("Explain x", style="bold") == "large/bold: Explain x"
    assert small("Explain x") == "small/plain: Explain x"
    pirate = cache_by_intent(cache=cache)(functools.partial(persona_answer, "pirate"))
    lawyer = cache_by_intent(cache=cache)(functools.partial(persona_answer, "lawyer"))
    assert pirate("Explain x") == "pirate: Explain x"
    assert lawyer("Explain x") == "lawyer: Explain x"
    assert large("Explain x") == "large/plain: Explain x"
    assert pirate("Explain x") == "pirate: Explain x"
    assert cache.stats()["hits"] == {"L1": 2}


def test_an_async_partial_is_cached_too(cache: MultiLevelCache) -> None:
    import asyncio

    large = cache_by_intent(cache=cache)(functools.partial(aanswer, model="large"))
    assert asyncio.run(large("Explain x")) == "large: Explain x"
    assert asyncio.run(large("Explain x")) == "large: Explain x"
    assert cache.stats()["hits"] == {"L1": 1}


class Bot:
    """A callable instance whose answers depend on its state (``system``)."""

    def __init__(self, system: str, llm: Counter) -> None:
        self.system = system
        self.llm = llm

    def __call__(self, prompt: str) -> str:
        return f"{self.system}: {self.llm(prompt)}"

    def __cache_key__(self) -> str:
        return self.system


class Plain:
    def __call__(self, prompt: str) -> str:
        return f"plain: {prompt}"


def test_a_callable_instance_is_cached_by_its_class_and_cache_key(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """Decorating a callable instance works; its ``__cache_key__`` joins every key."""
    pirate_bot, lawyer_bot = Bot("pirate", llm), Bot("lawyer", llm)
    pirate, lawyer = (
        cache_by_intent(cache=cache)(pirate_bot),
        cache_by_intent(cache=cache)(lawyer_bot),
    )
    assert pirate("Explain x") == "pirate: answer #1 to Explain x"
    assert lawyer("Explain x") == "lawyer: answer #2 to Explain x"
    assert pirate("Explain x") == "pirate: answer #1 to Explain x" and llm.calls == 2
    pirate_bot.system = "lawyer"  # its state changed: read on every call
    assert pirate("Explain x") == "lawyer: answer #2 to Explain x" and llm.calls == 2
    plain = cache_by_intent(cache=cache)(Plain())
    assert plain("Explain x") == plain("Explain x") == "plain: Explain x"


def test_a_stateful_callable_instance_is_never_refreshed_from_changed_state(
    cache: MultiLevelCache, clock: Any, llm: Counter
) -> None:
    """Its state cannot be snapshotted: a stale entry is not served (no background
    refresh could answer for the state the key stands for)."""
    cached = cache_by_intent(cache=cache, stale_ttl=600)(Bot("pirate", llm))
    cached("Summarize x")
    clock.advance(301)
    assert cached("Summarize x") == "pirate: answer #2 to Summarize x" and llm.calls == 2


def test_a_closures_own_nonlocal_state_is_not_its_identity(cache: MultiLevelCache) -> None:
    """A call counter the function assigns itself is state, not what it was made with:
    functions made alike around different counts still share entries."""

    def make(start: int) -> Any:
        count = start

        @cache_by_intent(cache=cache, name=None)
        def ask(prompt: str) -> str:
            nonlocal count
            count += 1
            return f"answer #{count}"

        return ask

    assert make(0)("Explain x") == "answer #1"
    assert make(41)("Explain x") == "answer #1"
