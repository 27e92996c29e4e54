"""Intent classification: what a first classification costs with the default rules, against
the rules and matcher of 0.1.0 on the same 200-character prompts, and a remembered decision.

The prompts are made here, deterministically, from questions and instructions of every kind
the rules know (volatile topics, office holders, reference questions, code, chatter), each
padded with context to 200 characters; 512 distinct prompts are cycled, and the first
classification skips the memo (``IntentRules._classify``), so every call reads its prompt.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from llm_middleware import IntentRules

from ._timing import Runner, Subject, clock
from .context import Context
from .report import Row, Target, sample_row

__all__ = ["intent", "make_prompts", "rules_010"]

SECTION = "intent: first classification, 200-character prompts"
BASELINE = "0.1.0 rules and matcher"

_OPENERS = (
    "What is the price of Bitcoin right now?", "Who won the game last night?",
    "What's the weather in Paris this weekend?", "Is Gmail down for everyone?",
    "What are today's top headlines?", "Who is the CEO of Microsoft?",
    "What is the tallest building in the world?", "Explain how a hash map works.",
    "What is a monad?", "How does TLS certificate pinning work?",
    "Write a function that parses ISO dates in Python.", "Refactor this class for testing.",
    "Summarize the following meeting notes for the team.", "Translate this email to German.",
    "How long do domesticated cows live?", "What is the current ratio in accounting?",
    "Give me three ideas for a birthday party.", "Why is the sky blue?",
    "What is the exchange rate of the euro to the dollar?", "Draft a polite reply to a customer.",
    "How many people live in Tokyo?", "What happened in the stock market this morning?",
    "List the pros and cons of remote work.", "Who painted the Mona Lisa?",
)  # fmt: skip
_CONTEXT = (
    "Please keep the answer short and plain.", "I am preparing a presentation for my team.",
    "Use bullet points where it helps.", "Assume I know the basics already.",
    "This is for a blog post aimed at beginners.", "Cite sources if you can.",
    "My manager asked me about it this afternoon.", "Answer in a friendly tone.",
    "The audience is mostly engineers and designers.", "Avoid jargon as far as possible.",
)  # fmt: skip

_RULES_010 = (  # the default word lists of 0.1.0, in their order
    ("time-sensitive", ("current", "currently", "today", "tonight", "yesterday", "now",
                        "right now", "latest", "this week", "breaking", "live", "real-time",
                        "realtime")),
    ("reference", ("definition", "define", "explain", "what is", "what are", "meaning of")),
    ("code", ("write", "code", "function", "implement", "refactor", "script")),
)  # fmt: skip


def rules_010() -> Callable[[str], str]:
    """The 0.1.0 classifier: one case-insensitive regex of whole words per rule, in order."""
    space = r"\s+"
    compiled = [
        (name, re.compile("|".join(rf"\b{space.join(map(re.escape, w.split()))}\b" for w in ws),
                          re.IGNORECASE))
        for name, ws in _RULES_010
    ]  # fmt: skip

    def classify(prompt: str) -> str:
        for name, regex in compiled:
            match = regex.search(prompt)
            if match is not None:
                return f"{name}:{match.group(0).lower()}"
        return "default"

    return classify


def make_prompts(n: int = 512, length: int = 200, seed: int = 18) -> list[str]:
    """``n`` distinct prompts of ``length`` characters: a question or task, then context."""
    rng = random.Random(seed)
    prompts: set[str] = set()
    while len(prompts) < n:
        text = rng.choice(_OPENERS)
        while len(text) < length:
            text += " " + rng.choice(_CONTEXT)
        prompts.add(text[:length])
    return sorted(prompts)


def _cycling(fn: Callable[[str], object], prompts: list[str]) -> Runner:
    def run(n: int) -> int:
        now = clock()
        count = len(prompts)
        start = now()
        for i in range(n):
            fn(prompts[i % count])
        return now() - start

    return run


def intent(ctx: Context) -> list[Row]:
    """First classification (default rules vs 0.1.0's) and a remembered one."""
    prompts = make_prompts()
    rules = IntentRules.default()
    rules.classify(prompts[0])  # compiles the matcher outside the timing
    remembered = IntentRules.default()
    remembered.classify(prompts[0])
    subjects = [
        Subject(BASELINE, _cycling(rules_010(), prompts)),
        Subject("default rules", _cycling(rules._classify, prompts)),
        Subject("remembered", _cycling(remembered.classify, prompts[:1])),
    ]
    found = ctx.measure(SECTION, subjects)
    base = found[BASELINE].median_us
    return [
        sample_row(SECTION, "0.1.0: 3 rules, 25 words", found[BASELINE], against=base,
                   vs=BASELINE),
        sample_row(SECTION, "default rules: first classification", found["default rules"],
                   against=base, vs=BASELINE, target=Target("<=", 1.5)),
        sample_row(SECTION, "default rules: remembered decision", found["remembered"],
                   against=base, vs=BASELINE),
    ]  # fmt: skip
