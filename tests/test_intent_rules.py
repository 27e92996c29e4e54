"""The default intent rules, family by family, their exceptions, and their quality on the
labelled questions shipped with the package."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from llm_middleware import CachePolicy, Except, IntentRules, Rule
from llm_middleware.intent_eval import Labelled, evaluate

RULES = IntentRules.default()

NEVER_FAMILIES = {
    "time-sensitive": [
        "Who won the game last night?", "What did the senator say yesterday?",
        "Any concerts in Leeds this weekend?", "Which films are out this month?",
        "What's on the agenda tonight?", "What are the upcoming releases from Nintendo?",
        "When is the next eclipse?", "How many goals so far in the tournament?",
        "What is the population as of today?", "Who is playing right now?",
        "Give me the latest on the merger", "Any recent changes to the visa rules?",
    ],
    "markets": [
        "What is the price of Bitcoin?", "What is Apple's stock price?",
        "How much is an ounce of silver worth?", "How is the Nasdaq doing?",
        "What is the market cap of Nvidia?", "Why is the rupee falling?",
    ],
    "exchange-rates": [
        "What is the exchange rate of USD to EUR?", "Convert GBP to JPY for me",
        "How many rupees is one dollar?",
    ],
    "sports": [
        "What is the score of the Lakers game?", "Who is top of the league table?",
        "What are the odds of the Celtics winning?", "Did the Yankees win?",
        "Who won the Super Bowl?",
    ],
    "weather": [
        "What's the weather in Paris?", "Will it rain in Oslo?", "What is the forecast for Rome?",
        "Is it snowing in Denver?",
    ],
    "traffic": ["How's the traffic on the M25?", "Are there road closures downtown?"],
    "news": ["What are the top headlines?", "What's trending on TikTok?", "Any news from Kyiv?"],
    "outages": ["Is Gmail down?", "Is there an outage at AWS?", "Is Slack down for everyone?"],
    "elections": ["Who is leading in the polls?", "What are the election results in Texas?"],
    "schedules": [
        "What time does the pharmacy open?", "Check the flight status of BA117",
        "What are the showtimes for Dune?", "Which films are in cinemas in Leeds?",
    ],
    "clock": ["What time is it in Tokyo?", "What day is it?", "What month is it?"],
    "running-figures": [
        "How many followers does Taylor Swift have?", "Who is the richest person alive?",
        "How many subscribers does the channel have?", "How many people are in the world?",
        "How many vaccine doses have been given in Peru?", "Which state has the most covid cases?",
    ],
}  # fmt: skip

SHORT_FAMILIES = {
    "present": ["Who is the current president of Chile?", "Which club is Kane at currently?"],
    "office-holders": [
        "Who is the CEO of Microsoft?", "Who is the prime minister of Canada?",
        "Who owns Twitter?", "Who is the head coach of the Bears?",
    ],
    "records": [
        "What is the world record for the marathon?", "What is the tallest building?",
        "What is the newest version of Python?", "What is the population of Peru?",
    ],
}  # fmt: skip

LONG_FAMILIES = {
    "reference": [
        "What is a monad?",
        "Explain quantum tunnelling",
        "Define entropy",
        "What is the meaning of life?",
        "How does TLS work?",
        "Why is the sky blue?",
        "What is photosynthesis?",
        "What does HTTP stand for?",
    ],
}

MEDIUM_FAMILIES = {
    "code": ["Write a function that parses dates", "Refactor this class", "Debug my script"],
}

FAMILIES = [
    (policy, family, prompt)
    for policy, families in (
        (CachePolicy.NEVER, NEVER_FAMILIES),
        (CachePolicy.SHORT, SHORT_FAMILIES),
        (CachePolicy.LONG, LONG_FAMILIES),
        (CachePolicy.MEDIUM, MEDIUM_FAMILIES),
    )
    for family, prompts in families.items()
    for prompt in prompts
]


@pytest.mark.parametrize(("policy", "family", "prompt"), FAMILIES)
def test_each_rule_family(policy: CachePolicy, family: str, prompt: str) -> None:
    """Each family decides its kind of question, and the verdict names it."""
    verdict = RULES.classify(prompt)
    assert verdict.policy is policy, verdict
    assert verdict.rule.split(":")[0] == family, verdict


EXCEPTIONS = [
    ("live-verb", "How long do domesticated cows live?"),
    ("live-verb", "How can I live a meaningful life?"),
    ("live-verb", "Where do emperor penguins live?"),
    ("live-compound", "Explain live migration of VMs"),
    ("live-compound", "How does a live wire differ from a neutral wire?"),
    ("current-noun", "Is current a scalar or a vector quantity?"),
    ("current-noun", "What is the current ratio in accounting?"),
    ("current-noun", "How does an electric current heat a wire?"),
    ("now-word", 'What does the word "now" mean?'),
    ("now-word", "Now that I have a degree, what should I study?"),
    ("fixed-dates", "In what month of this year is the company's 50th anniversary?"),
    ("past-since", "Which month of 2015 had the lowest inflation since 1990?"),
    ("dated-past", "Who won the 1966 World Cup?"),
    ("dated-past", "Who won the first season of American Idol?"),
    ("score-noun", "How many goals did Pele score in his career?"),
    ("all-time", "Who was the richest person in history?"),
    ("score-noun", "What is a good credit score?"),
    ("weather-science", "What is the difference between weather and climate?"),
    ("market-concepts", "What is a bear market?"),
    ("news-word", "Is fake news a new problem?"),
    ("down-phrasal", "Is it normal to break down after an exam?"),
]


@pytest.mark.parametrize(("name", "prompt"), EXCEPTIONS)
def test_each_exception_hides_a_sense(name: str, prompt: str) -> None:
    """The sense an exception knows is not time-sensitive; the verdict says it was used."""
    verdict = RULES.classify(prompt)
    assert verdict.policy is not CachePolicy.NEVER, verdict
    assert name in verdict.rule.split(" except ")[1].split(","), verdict


def test_the_issue_examples() -> None:
    """Questions that went stale under 0.1.0 are never cached; harmless ones are cached."""
    stale = [
        "What is the price of Bitcoin?", "What is Apple's stock price?",
        "What is the exchange rate of USD to EUR?", "What is the score of the Lakers game?",
        "What are the top headlines?", "Who won the game last night?",
        "What's the weather in Paris?", "Is Gmail down?",
    ]  # fmt: skip
    harmless = [
        "How long do domesticated cows live?", "Is current a scalar or a vector quantity?",
        "What is the current ratio in accounting?", "Explain live migration of VMs",
        "How does a live wire differ from a neutral wire?",
    ]  # fmt: skip
    assert [RULES(q) for q in stale] == [CachePolicy.NEVER] * len(stale)
    assert CachePolicy.NEVER not in [RULES(q) for q in harmless]


def _shipped(name: str) -> list[Labelled]:
    text = resources.files("llm_middleware").joinpath(f"data/{name}").read_text("utf-8")
    return [Labelled(x["question"], x["fact_type"]) for x in json.loads(text)]


@pytest.mark.parametrize("name", ["intent-train.json", "intent-test.json"])
def test_quality_on_the_shipped_examples(name: str) -> None:
    """On the labelled examples shipped in the package the targets hold."""
    result = evaluate(RULES, _shipped(name))
    assert result.total("fast-changing") >= 30 and result.total("never-changing") >= 30
    assert result.stale_risk.fraction <= 0.02, result.render(show_errors=True)
    assert result.fast_never.fraction >= 0.80, result.render(show_errors=True)
    assert result.wasted.fraction <= 0.03, result.render(show_errors=True)


def _reference(rules: IntentRules, prompt: str) -> tuple[CachePolicy, str]:
    """The semantics, the slow way: each exception's whole regex hides what it matches
    (its ``sense`` group when present); the first rule with a match outside hidden text
    decides."""
    text = prompt.lower()
    hidden = []
    for exception in rules.exceptions:
        for match in exception._regex.finditer(text):
            group = "sense" if "sense" in match.re.groupindex and match.group("sense") else 0
            hidden.append(match.span(group))
    for rule in rules.rules:
        for start in range(len(text) + 1):
            match = rule._regex.match(text, start)
            if match is not None and all(
                match.end() <= a or match.start() >= b for a, b in hidden if b > a
            ):
                return rule.policy, rule.name
    return rules.default_policy, "default"


def test_fast_matching_agrees_with_the_plain_semantics() -> None:
    """Skipping rules by the words they need, and trying them only where their first words
    occur, gives the verdicts a plain rule-by-rule search gives."""
    prompts = [x.question for x in _shipped("intent-train.json") + _shipped("intent-test.json")]
    prompts += [p for _, _, p in FAMILIES] + [p for _, p in EXCEPTIONS]
    prompts += [f"{a} {b}" for a, b in zip(prompts[::7], prompts[3::11], strict=False)]
    prompts += ["", "???", "NOW", "Ünïcode tödäy: what's the weather?", "live" * 3]
    for prompt in prompts:
        verdict = RULES._classify(prompt)
        assert (verdict.policy, verdict.rule.split(":")[0].split(" ")[0]) == _reference(
            RULES, prompt
        ), prompt


def test_exceptions_and_rules_from_code() -> None:
    """Exceptions are data like rules: added in code, named in the verdict."""
    rules = IntentRules(
        [Rule(CachePolicy.NEVER, words=["live"], name="live")],
        exceptions=[Except("demo", pattern=r"\blive\s+demo\b")],
    )
    assert rules.classify("Book a live demo").rule == "default except demo"
    assert rules.classify("Is it live?").rule == "live:live"
    more = rules.with_exceptions(Except("stock", words=["live stock"]))
    assert more("live stock prices") is CachePolicy.SHORT
    assert rules("live stock prices") is CachePolicy.NEVER


def test_patterns_keep_their_case_insensitivity() -> None:
    """Rules match any case, patterns with upper-case letters included."""
    rules = IntentRules([Rule(CachePolicy.LONG, pattern=r"^FAQ:\s*[A-Z]")])
    assert rules("faq: opening hours") is CachePolicy.LONG
    assert rules("FAQ: Opening hours") is CachePolicy.LONG
    assert rules("see the FAQ: later") is CachePolicy.SHORT
    quote = "\N{RIGHT SINGLE QUOTATION MARK}"
    assert RULES(f"What{quote}s the time in Oslo?") is CachePolicy.NEVER


def test_a_long_prompt_is_classified_by_its_words() -> None:
    """A prompt past 64 kB takes the path without copies; the verdict is the same."""
    filler = "Please read the attached report carefully. " * 2000
    assert len(filler) > 65536
    assert RULES(filler + "What is the weather in Rome?") is CachePolicy.NEVER
    assert RULES("Explain this report. " + filler) is CachePolicy.LONG
    assert re.fullmatch(r"default", RULES.classify(filler).rule)
