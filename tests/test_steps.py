"""Each chain step on its own: a `CallContext` in, its fields (or `SkipCache`) out.

The steps are pure (``llm_middleware/chain.py``): no cache, no backend, no trace is
needed to run one, and whether its outcome may be remembered is its own declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from llm_middleware import CachePolicy, IntentRules, SkipCache, bypass, refresh, use_policy
from llm_middleware.chain import (
    BuildKey,
    CallContext,
    ChoosePolicy,
    ReadIntent,
    check_controls,
    remembers,
    run_steps,
)
from llm_middleware.keys import make_key


def _ctx(**arguments: Any) -> CallContext:
    return CallContext("tests.ask", arguments)


def test_check_controls_marks_bypass_and_refresh() -> None:
    """``bypass()`` skips the cache; ``refresh()`` only skips the read; outside, nothing."""
    ctx = _ctx(prompt="Explain DNS")
    check_controls(ctx)
    assert ctx.read and ctx.write
    with refresh():
        check_controls(ctx)
    assert not ctx.read and ctx.write
    with bypass(), pytest.raises(SkipCache, match="bypass"):
        check_controls(_ctx(prompt="Explain DNS"))


def test_read_intent_sets_the_prompt_from_the_arguments() -> None:
    """The reader's text becomes ``ctx.prompt``."""
    ctx = _ctx(question="What is TCP?")
    ReadIntent(lambda arguments: str(arguments["question"]))(ctx)
    assert ctx.prompt == "What is TCP?"


def test_choose_policy_classifies_and_sets_ttl_and_depth() -> None:
    """A reference question is LONG: its TTL and its depth (all tiers) are set."""
    ctx = _ctx()
    ctx.prompt = "Explain HTTP caching"
    ChoosePolicy(IntentRules.default())(ctx)
    assert ctx.policy is CachePolicy.LONG
    assert ctx.ttl == CachePolicy.LONG.ttl and ctx.depth is None and ctx.rule


def test_choose_policy_skips_never_prompts_and_obeys_use_policy() -> None:
    """NEVER raises `SkipCache`; ``use_policy`` overrides the words."""
    ctx = _ctx()
    ctx.prompt = "What is the latest news today?"
    with pytest.raises(SkipCache, match="policy_never"):
        ChoosePolicy(IntentRules.default())(ctx)
    with use_policy(CachePolicy.SHORT):
        ChoosePolicy(IntentRules.default(), {CachePolicy.SHORT: 1})(ctx)
    assert (ctx.policy, ctx.rule, ctx.depth) == (CachePolicy.SHORT, "use_policy", 1)


def test_build_key_is_the_key_of_the_keyed_arguments() -> None:
    """Ignored arguments stay out; the namespace enters the key."""
    ctx = _ctx(prompt="Explain DNS", client=object())
    BuildKey(ignore=("client",), namespace="team-a")(ctx)
    assert ctx.namespace == "team-a"
    assert ctx.key == make_key("tests.ask", {"prompt": "Explain DNS"}, "team-a")


def test_build_key_fails_closed_without_a_required_namespace() -> None:
    """``namespace_required`` (a bool, or the process setting asked per call) refuses a
    call whose namespace resolves to nothing."""
    with pytest.raises(SkipCache, match="namespace_missing"):
        BuildKey(namespace=lambda arguments: None, namespace_required=True)(_ctx(prompt="x"))
    asked: list[bool] = []

    def required() -> bool:
        asked.append(True)
        return False

    ctx = _ctx(prompt="x")
    BuildKey(namespace_required=required)(ctx)
    assert asked == [True] and ctx.key is not None


def test_build_key_refuses_arguments_without_a_canonical_form() -> None:
    """An argument JSON cannot write makes the call uncached."""
    with pytest.raises(SkipCache, match="unkeyable_argument"):
        BuildKey()(_ctx(prompt="x", when=object()))


def test_run_steps_turns_any_step_failure_into_an_uncached_call() -> None:
    """`SkipCache` keeps its reason; any other exception is ``step_error``, named."""

    def broken(ctx: CallContext) -> None:
        raise KeyError("boom")

    ctx = _ctx(prompt="x")
    run_steps([broken], ctx)
    assert (ctx.skip, ctx.read, ctx.write) == ("step_error", False, False)
    assert ctx.skip_error is not None and "KeyError" in ctx.skip_error


def test_steps_declare_whether_their_outcome_may_be_remembered() -> None:
    """The built-in steps say so, except where a user's callable decides; a step
    without the declaration is never remembered."""

    def custom_namespace(arguments: Mapping[str, Any]) -> str:
        return "x"

    assert remembers(check_controls)
    assert remembers(ReadIntent(lambda a: "", remembers=True))
    assert not remembers(ReadIntent(lambda a: ""))
    assert remembers(ChoosePolicy(IntentRules.default()))
    assert not remembers(ChoosePolicy(lambda prompt: CachePolicy.LONG))
    assert remembers(BuildKey(namespace="fixed"))
    assert not remembers(BuildKey(namespace=custom_namespace))
    assert not remembers(lambda ctx: None)
