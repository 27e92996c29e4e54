"""Intent policy: the default rules, whole-word matching, and configurable rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_middleware import (
    POLICY_TTL,
    CachePolicy,
    ConfigurationError,
    IntentRules,
    Rule,
    determine_cache_policy,
)


def test_policy_enum_order_and_ttls() -> None:
    """The enum iterates NEVER, SHORT, MEDIUM, LONG with TTLs 0/300/3600/86400."""
    assert list(CachePolicy) == [
        CachePolicy.NEVER,
        CachePolicy.SHORT,
        CachePolicy.MEDIUM,
        CachePolicy.LONG,
    ]
    assert [p.ttl for p in CachePolicy] == [0, 300, 3600, 86400]
    assert {p: p.ttl for p in CachePolicy} == POLICY_TTL


@pytest.mark.parametrize(
    ("prompt", "policy"),
    [
        ("What is the current price of bitcoin?", CachePolicy.NEVER),
        ("What happened TODAY in Paris?", CachePolicy.NEVER),
        ("Give me the latest news", CachePolicy.NEVER),
        ("Who is playing right now?", CachePolicy.NEVER),
        ("Any breaking stories this week?", CachePolicy.NEVER),
        ("What is a monad?", CachePolicy.LONG),
        ("Explain   quantum tunnelling", CachePolicy.LONG),
        ("Give me the definition of entropy", CachePolicy.LONG),
        ("Write a haiku about autumn", CachePolicy.MEDIUM),
        ("Implement quicksort in Rust", CachePolicy.MEDIUM),
        ("Summarize this paragraph", CachePolicy.SHORT),
        ("", CachePolicy.SHORT),
    ],
)
def test_default_rules(prompt: str, policy: CachePolicy) -> None:
    """Time-sensitive → NEVER, reference → LONG, code → MEDIUM, else SHORT."""
    assert determine_cache_policy(prompt) is policy


@pytest.mark.parametrize(
    "prompt",
    [
        "Do you know a good recipe for bread?",  # know ≠ now
        "How much snowfall did Oslo get in 1990?",  # snowfall ≠ now
        "Decode this base64 for me",  # decode ≠ code
        "Recurrent networks vs transformers",  # recurrent ≠ current
        "Abstracted thoughts on malware",  # no rule words inside other words
    ],
)
def test_whole_words_only(prompt: str) -> None:
    """A rule word inside a longer word does not match: these stay SHORT."""
    assert determine_cache_policy(prompt) is CachePolicy.SHORT


def test_order_never_beats_long_beats_medium() -> None:
    """Rules are checked NEVER → LONG → MEDIUM; the first match decides."""
    assert determine_cache_policy("Explain the latest code changes") is CachePolicy.NEVER
    assert determine_cache_policy("Explain this code") is CachePolicy.LONG


def test_classify_reports_the_rule() -> None:
    """The verdict names the rule and the word that matched, for the trace."""
    verdict = IntentRules.default().classify("Please EXPLAIN recursion")
    assert verdict.policy is CachePolicy.LONG
    assert verdict.ttl == 86400
    assert verdict.rule == "reference:explain"
    assert IntentRules.default().classify("hello").rule == "default"


def test_rules_can_be_extended_and_replaced() -> None:
    """Users add words, add rules that win over the defaults, or replace everything."""
    extended = IntentRules.default().extend(Rule(CachePolicy.NEVER, words=["weather"]))
    assert extended("Explain the weather in Rome") is CachePolicy.NEVER
    assert extended("Explain recursion") is CachePolicy.LONG
    worded = IntentRules.default().with_words(CachePolicy.LONG, "summarize")
    assert worded("Summarize Hamlet") is CachePolicy.LONG
    replaced = IntentRules([Rule(CachePolicy.LONG, pattern=r"^faq:")], default=CachePolicy.NEVER)
    assert replaced("faq: opening hours") is CachePolicy.LONG
    assert replaced("What is a monad?") is CachePolicy.NEVER


def test_custom_ttls_and_bad_ttls() -> None:
    """TTLs per policy are configurable; zero or negative TTLs are refused at once."""
    rules = IntentRules.default().extend()
    custom = IntentRules(rules.rules, ttl={CachePolicy.LONG: 600})
    assert custom.classify("what is a monad").ttl == 600
    for bad in (0, -5):
        with pytest.raises(ConfigurationError, match="positive"):
            IntentRules(rules.rules, ttl={CachePolicy.SHORT: bad})


def test_bad_rules_are_refused() -> None:
    """A string instead of a word list, an empty rule or a bad regex raise at once."""
    with pytest.raises(ConfigurationError, match="list of words"):
        Rule(CachePolicy.NEVER, words="today")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no words"):
        Rule(CachePolicy.NEVER)
    with pytest.raises(ConfigurationError, match="bad intent pattern"):
        Rule(CachePolicy.NEVER, pattern="(")


def test_rules_from_toml(tmp_path: Path) -> None:
    """Operators tune rules in a TOML file; mistakes there are clear errors."""
    path = tmp_path / "rules.toml"
    path.write_text(
        'extends = "default"\n'
        "[ttl]\nlong = 7200\n"
        '[[rule]]\npolicy = "never"\nwords = ["stock price"]\nname = "markets"\n'
    )
    rules = IntentRules.from_file(path)
    assert rules.classify("Explain the stock  price of ACME").rule == "markets:stock  price"
    assert rules.classify("Explain recursion").ttl == 7200
    path.write_text('[[rule]]\npolicy = "forever"\nwords = ["x"]\n')
    with pytest.raises(ConfigurationError, match="unknown policy 'forever'"):
        IntentRules.from_file(path)
    path.write_text("rule = [")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        IntentRules.from_file(path)


def test_rules_file_exceptions(tmp_path: Path) -> None:
    """Exceptions live in the rules file too, need a name, and extend the default ones."""
    path = tmp_path / "rules.toml"
    path.write_text(
        'extends = "default"\n'
        '[[exception]]\nname = "live-demo"\nwords = ["live demo"]\n'
        '[[rule]]\npolicy = "never"\nwords = ["demo"]\nname = "demos"\n'
    )
    rules = IntentRules.from_file(path)
    assert rules.classify("Book a live demo").rule == "default except live-demo"
    assert rules.classify("Any demo slots?").rule == "demos:demo"
    assert rules.classify("How long do cows live?").rule == "default except live-verb"
    path.write_text('[[exception]]\nwords = ["x"]\n')
    with pytest.raises(ConfigurationError, match="needs a name"):
        IntentRules.from_file(path)
    path.write_text('[[exception]]\nname = "x"\npolicy = "never"\nwords = ["x"]\n')
    with pytest.raises(ConfigurationError, match="unknown exception settings"):
        IntentRules.from_file(path)


def test_a_model_can_only_shorten_the_lifetime() -> None:
    """``with_model``: the shorter of the two lifetimes wins, and the verdict says who decided."""

    def careful(prompt: str) -> CachePolicy:
        return CachePolicy.NEVER if "dividend" in prompt else CachePolicy.LONG

    rules = IntentRules.default().with_model(careful)
    verdict = rules.classify("Explain the dividend of ACME")
    assert (verdict.policy, verdict.rule) == (CachePolicy.NEVER, "model:" + careful.__qualname__)
    assert rules.classify("Explain recursion").rule == "reference:explain"  # LONG vs LONG
    assert rules.classify("Hello there").policy is CachePolicy.SHORT  # model's LONG is longer
    assert rules.extend(Rule(CachePolicy.LONG, words=["acme"]))("dividend of ACME") is (
        CachePolicy.NEVER
    )  # copies keep the model
    with pytest.raises(ConfigurationError, match="callable"):
        IntentRules.default().with_model("model")  # type: ignore[arg-type]
