"""`@cache_by_intent` as a user sees it: what is cached, what is not, on every target kind."""

from __future__ import annotations

import asyncio
import collections
import enum
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from llm_middleware import (
    CachePolicy,
    DecorationError,
    IntentRules,
    MultiLevelCache,
    Rule,
    cache_by_intent,
    configure,
)

from .support.llm import Counter


def test_repeated_prompt_calls_the_function_once(cache: MultiLevelCache, llm: Counter) -> None:
    """A repeated prompt is answered from the cache: the LLM runs once."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    first = chat("Explain recursion")
    assert chat("Explain recursion") == first
    assert llm.calls == 1
    assert chat("Explain iteration") != first
    assert llm.calls == 2


def test_time_sensitive_prompt_calls_every_time(cache: MultiLevelCache, llm: Counter) -> None:
    """ "today"/"latest" prompts are never cached: each call reaches the LLM."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    answers = {chat("What are the latest headlines today?") for _ in range(3)}
    assert llm.calls == 3
    assert len(answers) == 3


def test_bare_decorator_uses_the_process_default(llm: Counter) -> None:
    """Bare ``@cache_by_intent`` caches in the default memory tiers."""

    @cache_by_intent
    def chat(prompt: str) -> str:
        return llm(prompt)

    assert chat("What is a monad?") == chat("What is a monad?")
    assert llm.calls == 1


def test_configure_after_decoration(cache: MultiLevelCache, llm: Counter) -> None:
    """`configure()` made after decoration takes effect for default-cache functions."""

    @cache_by_intent
    def chat(prompt: str) -> str:
        return llm(prompt)

    configure(cache=cache, rules=IntentRules([Rule(CachePolicy.NEVER, words=["hello"])]))
    chat("hello there")
    chat("hello there")
    assert llm.calls == 2
    chat("anything else")
    assert cache.stats()["stores"] == 1


def test_all_arguments_are_in_the_key(cache: MultiLevelCache, llm: Counter) -> None:
    """Calls differing in any argument (not only the prompt) are different entries."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str, model: str = "small", temperature: float = 0.0) -> str:
        return llm(f"{prompt} ({model}/{temperature})")

    chat("Explain TCP")
    chat("Explain TCP", model="small")  # the default applied: same call
    chat("Explain TCP", "small", 0.0)
    assert llm.calls == 1
    chat("Explain TCP", model="large")
    chat("Explain TCP", temperature=0.7)
    assert llm.calls == 3


def test_ignored_arguments_are_not_in_the_key(cache: MultiLevelCache, llm: Counter) -> None:
    """``ignore=`` leaves clients and timeouts out of the key."""

    @cache_by_intent(cache=cache, ignore=("client", "timeout"))
    def chat(prompt: str, client: object, timeout: float = 10) -> str:
        return llm(prompt)

    chat("Explain DNS", object(), timeout=1)
    chat("Explain DNS", object(), timeout=30)
    assert llm.calls == 1


def test_messages_argument_is_read_for_intent(cache: MultiLevelCache, llm: Counter) -> None:
    """Without ``prompt``, the last user message of ``messages`` is the intent text."""

    @cache_by_intent(cache=cache)
    def chat(messages: list[dict[str, Any]]) -> str:
        return llm(str(messages))

    latest = [
        {"role": "system", "content": "Explain everything."},
        {"role": "user", "content": [{"type": "text", "text": "What is new today?"}]},
    ]
    chat(latest)
    chat(latest)
    assert llm.calls == 2  # the user asked something time-sensitive
    reference = [{"role": "user", "content": "What is a B-tree?"}]
    chat(reference)
    chat(reference)
    assert llm.calls == 3


def test_prompt_arg_names_another_argument(cache: MultiLevelCache, llm: Counter) -> None:
    """``prompt_arg`` points at the argument (or a callable) that holds the intent text."""

    @cache_by_intent(cache=cache, prompt_arg="question")
    def ask(question: str) -> str:
        return llm(question)

    @cache_by_intent(cache=cache, prompt_arg=lambda args: args["q"]["text"])
    def ask2(q: dict[str, str]) -> str:
        return llm(q["text"])

    ask("latest scores")
    ask("latest scores")
    ask2({"text": "latest scores"})
    ask2({"text": "latest scores"})
    assert llm.calls == 4


def test_prompt_arg_may_name_a_request_body(cache: MultiLevelCache, llm: Counter) -> None:
    """An argument holding a whole request (``{"model": ..., "messages": [...]}``) is
    read by its messages' last user text."""

    @cache_by_intent(cache=cache, prompt_arg="request")
    def send(request: dict[str, Any]) -> str:
        return llm(str(request))

    latest = {"model": "m", "messages": [{"role": "user", "content": "Latest scores?"}]}
    reference = {"model": "m", "messages": [{"role": "user", "content": "What is a B-tree?"}]}
    for request in (latest, latest, reference, reference):
        send(request)
    assert llm.calls == 3  # time-sensitive twice, then a reference question once


def test_no_prompt_argument_is_a_clear_error() -> None:
    """Decorating a function without a prompt raises at once, saying what to name."""
    with pytest.raises(DecorationError, match="prompt_arg='question'") as info:

        @cache_by_intent
        def ask(question: str) -> str:
            return question

    assert isinstance(info.value, TypeError)
    with pytest.raises(TypeError, match="no argument 'text'"):
        cache_by_intent(prompt_arg="text")(lambda prompt: prompt)
    with pytest.raises(TypeError, match="unknown arguments"):
        cache_by_intent(ignore=["client"])(lambda prompt: prompt)


def test_exceptions_propagate_and_are_not_cached(cache: MultiLevelCache, llm: Counter) -> None:
    """An exception reaches the caller unchanged and the next call tries again."""

    @cache_by_intent(cache=cache)
    def flaky(prompt: str) -> str:
        answer = llm(prompt)
        if llm.calls == 1:
            raise TimeoutError("upstream timed out")
        return answer

    with pytest.raises(TimeoutError, match="upstream timed out"):
        flaky("Explain RAID")
    assert flaky("Explain RAID") == "answer #2 to Explain RAID"
    assert flaky("Explain RAID") == "answer #2 to Explain RAID"
    assert llm.calls == 2


def test_wrong_arguments_raise_the_functions_own_error(cache: MultiLevelCache) -> None:
    """Calling with arguments that do not fit raises the usual TypeError."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return prompt

    with pytest.raises(TypeError):
        chat("a", "b")  # type: ignore[call-arg]


def test_metadata_is_preserved(cache: MultiLevelCache) -> None:
    """Name, docstring, signature, ``__wrapped__`` and coroutine-ness are kept."""

    def chat(prompt: str, model: str = "m") -> str:
        """Ask the model."""
        return prompt

    async def achat(prompt: str) -> str:
        """Ask asynchronously."""
        return prompt

    cached, acached = cache_by_intent(cache=cache)(chat), cache_by_intent(cache=cache)(achat)
    assert cached.__name__ == "chat" and cached.__doc__ == "Ask the model."
    assert inspect.signature(cached) == inspect.signature(chat)
    assert cached.__wrapped__ is chat
    assert not inspect.iscoroutinefunction(cached)
    assert inspect.iscoroutinefunction(acached) and acached.__name__ == "achat"


def test_namespaces_never_share_entries(cache: MultiLevelCache, llm: Counter) -> None:
    """Entries of one namespace are never served to another."""

    @cache_by_intent(cache=cache, namespace=lambda args: args["user"])
    def chat(prompt: str, user: str) -> str:
        return f"{user}: {llm(prompt)}"

    @cache_by_intent(cache=cache, namespace="tenant-b", ignore=["user"])
    def chat_b(prompt: str, user: str) -> str:
        return f"b: {llm(prompt)}"

    alice = chat("Explain OAuth", user="alice")
    bob = chat("Explain OAuth", user="bob")
    assert alice.startswith("alice") and bob.startswith("bob")
    assert chat("Explain OAuth", user="alice") == alice
    assert chat_b("Explain OAuth", user="alice").startswith("b:")
    assert llm.calls == 3


def test_unkeyable_argument_runs_uncached(cache: MultiLevelCache, llm: Counter) -> None:
    """An argument with no canonical form makes the call uncached, never a guess."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str, handle: object) -> str:
        return llm(prompt)

    handle = object()
    chat("Explain X", handle)
    chat("Explain X", handle)
    assert llm.calls == 2
    assert cache.stats()["bypasses"] == {"unkeyable_argument": 2}


def test_unsupported_result_is_returned_but_not_stored(cache: MultiLevelCache) -> None:
    """A result the codec cannot store faithfully is returned as is and not cached."""
    made: list[object] = []

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> Any:
        made.append(object())
        return made[-1]

    first = chat("Explain Y")
    assert first is made[0]
    assert chat("Explain Y") is made[1]


def test_user_steps_join_the_chain(cache: MultiLevelCache, llm: Counter) -> None:
    """A user step can force a policy, add key material, or skip the cache."""
    from llm_middleware import CallContext, SkipCache

    def no_secrets(ctx: CallContext) -> None:
        if "password" in ctx.prompt:
            raise SkipCache("sensitive")

    def per_region(ctx: CallContext) -> None:
        ctx.key_extra["region"] = "eu"

    @cache_by_intent(cache=cache, steps=[no_secrets, per_region])
    def chat(prompt: str) -> str:
        return llm(prompt)

    chat("Explain my password")
    chat("Explain my password")
    assert llm.calls == 2
    chat("Explain HTTP")
    chat("Explain HTTP")
    assert llm.calls == 3
    assert cache.stats()["bypasses"] == {"sensitive": 2}


# -- the eight target kinds ------------------------------------------------------------


def _targets(cache: MultiLevelCache, llm: Counter) -> dict[str, Callable[[str], Any]]:
    deco = cache_by_intent(cache=cache)

    @deco
    def function(prompt: str) -> str:
        return llm(prompt)

    @deco
    async def async_function(prompt: str) -> str:
        await asyncio.sleep(0)
        return llm(prompt)

    class Bot:
        @deco
        def method(self, prompt: str) -> str:
            return llm(prompt)

        @deco
        async def async_method(self, prompt: str) -> str:
            return llm(prompt)

        @classmethod
        @deco
        def class_method(cls, prompt: str) -> str:
            return llm(prompt)

        @deco
        @classmethod
        async def async_class_method(cls, prompt: str) -> str:
            return llm(prompt)

        @staticmethod
        @deco
        def static_method(prompt: str) -> str:
            return llm(prompt)

        @deco
        @staticmethod
        async def async_static_method(prompt: str) -> str:
            return llm(prompt)

    bot = Bot()
    return {
        "function": function,
        "async_function": async_function,
        "method": bot.method,
        "async_method": bot.async_method,
        "class_method": Bot.class_method,
        "async_class_method": bot.async_class_method,
        "static_method": bot.static_method,
        "async_static_method": Bot.async_static_method,
    }


@pytest.mark.parametrize(
    "kind",
    [
        "function",
        "async_function",
        "method",
        "async_method",
        "class_method",
        "async_class_method",
        "static_method",
        "async_static_method",
    ],
)
def test_every_target_kind_caches(kind: str, cache: MultiLevelCache, llm: Counter) -> None:
    """Functions, methods, classmethods and staticmethods, sync and async, all cache."""
    target = _targets(cache, llm)[kind]

    def call(prompt: str) -> Any:
        result = target(prompt)
        return asyncio.run(result) if inspect.iscoroutine(result) else result

    assert inspect.iscoroutinefunction(target) == kind.startswith("async")
    first = call("Explain monads")
    assert call("Explain monads") == first
    assert llm.calls == 1
    call("Explain functors")
    assert llm.calls == 2


def test_instances_share_entries_unless_they_define_a_cache_key(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """``self`` is not in the key; ``__cache_key__`` makes instance state part of it."""

    class Plain:
        def __init__(self, persona: str) -> None:
            self.persona = persona

        @cache_by_intent(cache=cache)
        def ask(self, prompt: str) -> str:
            return llm(prompt)

    class Persona(Plain):
        def __cache_key__(self) -> str:
            return self.persona

        @cache_by_intent(cache=cache)
        def ask_as(self, prompt: str) -> str:
            return f"{self.persona}: {llm(prompt)}"

    Plain("a").ask("Explain tea")
    Plain("b").ask("Explain tea")
    assert llm.calls == 1
    assert Persona("pirate").ask_as("Explain tea").startswith("pirate")
    assert Persona("poet").ask_as("Explain tea").startswith("poet")
    assert Persona("pirate").ask_as("Explain tea").startswith("pirate")
    assert llm.calls == 3


def test_every_parameter_kind_binds_like_a_call(cache: MultiLevelCache, llm: Counter) -> None:
    """Positional-only, keyword-only, ``*args`` and ``**kwargs`` all key by what was passed."""

    @cache_by_intent(cache=cache)
    def chat(
        prompt: str, /, model: str = "m", *extra: str, tone: str = "plain", **opts: int
    ) -> str:
        return llm(f"{prompt} {model} {extra} {tone} {opts}")

    @cache_by_intent(cache=cache)
    def simple(prompt: str, *, tone: str = "plain") -> str:
        return llm(f"{prompt} {tone}")

    chat("Explain A", "m", "x", tone="dry", n=1)
    chat("Explain A", model="m")
    chat("Explain A")  # the same call as the one above, defaults applied
    assert llm.calls == 2
    chat("Explain A", "m", "y", tone="dry", n=1)
    chat("Explain A", "m", "x", tone="dry", n=2)
    assert llm.calls == 4
    simple("Explain B")
    simple("Explain B", tone="plain")
    simple(prompt="Explain B")
    assert llm.calls == 5
    with pytest.raises(TypeError):
        simple("Explain B", "positional tone")  # type: ignore[misc]
    with pytest.raises(TypeError):
        simple()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        simple("Explain B", nope=1)  # type: ignore[call-arg]


def test_repeated_scalar_calls_keep_types_apart(cache: MultiLevelCache, llm: Counter) -> None:
    """1, 1.0, True and "1" are different arguments, even for calls answered from memory."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str, n: object) -> str:
        return llm(f"{prompt} {n!r}")

    for _ in range(2):
        answers = [chat("Explain numbers", n) for n in (1, 1.0, True, "1", None)]
    assert llm.calls == 5
    assert len(set(answers)) == 5


def test_a_result_the_codec_cannot_encode_is_returned(cache: MultiLevelCache, llm: Counter) -> None:
    """A string that cannot be stored (a lone surrogate) is returned as is, not stored."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return llm(prompt) + " \ud800"

    with capture_logs() as events:
        assert chat("Explain encodings") == "answer #1 to Explain encodings \ud800"
    assert chat("Explain encodings") == "answer #2 to Explain encodings \ud800"
    assert llm.calls == 2
    skipped = [e for e in events if e["event"] == "cache.bypass"]
    assert [e["reason"] for e in skipped] == ["unsupported_result"]


class _Label(str, enum.Enum):
    SPAM = "spam"


class _Score(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    "result", [_Label.SPAM, _Score.HIGH, collections.Counter({"a": 2}), (1, 2), {1: "a"}]
)
def test_results_that_would_change_type_are_not_stored(
    cache: MultiLevelCache, llm: Counter, result: object
) -> None:
    """Enums, Counters, tuples, dicts with non-string keys: returned, never turned into
    plain JSON types on a later hit."""

    @cache_by_intent(cache=cache)
    def classify(prompt: str) -> object:
        llm(prompt)
        return result

    first, second = classify("Explain spam"), classify("Explain spam")
    assert first is result and second is result and llm.calls == 2


def _wrong_classifier(prompt: str) -> CachePolicy:
    return "short"  # type: ignore[return-value]


def _raising_classifier(prompt: str) -> CachePolicy:
    raise RuntimeError("classifier service down")


class _Stateful:
    def __cache_key__(self) -> str:
        raise RuntimeError("state unavailable")


class _BadArg:
    def __cache_key__(self) -> str:
        raise AttributeError("boom")


@pytest.mark.parametrize(
    ("options", "args", "reason"),
    [
        ({"rules": _wrong_classifier}, ("Explain",), "step_error"),
        ({"rules": _raising_classifier}, ("Explain",), "step_error"),
        ({"prompt_arg": lambda a: a["prompt"]["text"]}, ("Explain",), "step_error"),
        ({}, ("Explain", _BadArg()), "unkeyable_argument"),
    ],
)
def test_failing_decisions_make_the_call_uncached(
    cache: MultiLevelCache,
    llm: Counter,
    options: dict[str, Any],
    args: tuple[Any, ...],
    reason: str,
) -> None:
    """A classifier, prompt reader or argument hook that fails never fails the call: it
    runs uncached, with a warning that says why."""

    @cache_by_intent(cache=cache, **options)
    def chat(prompt: Any, extra: Any = None) -> str:
        return llm(prompt)

    with capture_logs() as events:
        assert chat(*args) == "answer #1 to Explain"
        assert chat(*args) == "answer #2 to Explain"
    assert llm.calls == 2
    bypasses = [e for e in events if e["event"] == "cache.bypass"]
    assert {(e["reason"], e["log_level"]) for e in bypasses} == {(reason, "warning")}


def test_a_failing_instance_cache_key_makes_the_call_uncached(cache: MultiLevelCache) -> None:
    """An instance whose ``__cache_key__`` raises still gets its answer, uncached."""

    class Bot(_Stateful):
        @cache_by_intent(cache=cache)
        def ask(self, prompt: str) -> str:
            return "answer"

    assert Bot().ask("Explain") == "answer"
    assert cache.stats()["bypasses"] == {"step_error": 1}
