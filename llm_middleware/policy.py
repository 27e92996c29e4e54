"""Intent policy: which cache lifetime a prompt gets, decided by ordered word rules."""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from .bounded import BoundedMemo
from .errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "POLICY_TTL",
    "CachePolicy",
    "Classification",
    "Classifier",
    "IntentRules",
    "Rule",
    "determine_cache_policy",
]


class CachePolicy(Enum):
    """How long an answer may be reused; ``.ttl`` is the lifetime in seconds."""

    NEVER = "never"
    SHORT = "short"  # 5 minutes
    MEDIUM = "medium"  # 1 hour
    LONG = "long"  # 24 hours

    @property
    def ttl(self) -> int:
        """The default lifetime of this policy in seconds (0 for NEVER)."""
        return POLICY_TTL[self]


POLICY_TTL: dict[CachePolicy, int] = {
    CachePolicy.NEVER: 0,
    CachePolicy.SHORT: 300,
    CachePolicy.MEDIUM: 3600,
    CachePolicy.LONG: 86400,
}

Classifier = Callable[[str], CachePolicy]
"""Any callable from prompt text to a policy can classify."""


class Classification(NamedTuple):
    """A classifier's verdict, with the rule that decided (for the trace)."""

    policy: CachePolicy
    ttl: int
    rule: str


def _phrase_pattern(phrase: str) -> str:
    words = phrase.split()
    if not words:
        raise ConfigurationError("an intent word or phrase must not be empty")
    return r"\s+".join(re.escape(word) for word in words)


@dataclass(frozen=True)
class Rule:
    """One intent rule: prompts containing any of ``words`` (whole words or
    phrases, case-insensitive) or matching ``pattern`` (a regex) get ``policy``."""

    policy: CachePolicy
    words: Sequence[str] = ()
    pattern: str | None = None
    name: str = ""
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.words, str):
            raise ConfigurationError(
                f"Rule.words must be a list of words, not the string {self.words!r}"
            )
        alternatives = [rf"\b{_phrase_pattern(w)}\b" for w in self.words]
        if self.pattern is not None:
            alternatives.append(f"(?:{self.pattern})")
        if not alternatives:
            raise ConfigurationError(f"rule for {self.policy.name} has no words and no pattern")
        try:
            regex = re.compile("|".join(alternatives), re.IGNORECASE)
        except re.error as exc:
            raise ConfigurationError(f"bad intent pattern {self.pattern!r}: {exc}") from exc
        object.__setattr__(self, "words", tuple(self.words))
        object.__setattr__(self, "_regex", regex)
        if not self.name:
            object.__setattr__(self, "name", self.policy.value)

    def search(self, text: str) -> str | None:
        """The matched text, lower-cased, or ``None``."""
        match = self._regex.search(text)
        return None if match is None else match.group(0).lower()


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        CachePolicy.NEVER,
        words=(
            "current", "currently", "today", "tonight", "yesterday", "now", "right now",
            "latest", "this week", "breaking", "live", "real-time", "realtime",
        ),
        name="time-sensitive",
    ),
    Rule(
        CachePolicy.LONG,
        words=("definition", "define", "explain", "what is", "what are", "meaning of"),
        name="reference",
    ),
    Rule(
        CachePolicy.MEDIUM,
        words=("write", "code", "function", "implement", "refactor", "script"),
        name="code",
    ),
)  # fmt: skip


_MEMO_SIZE = 4096
_MEMO_PROMPT_CHARS = 4096


class IntentRules:
    """An ordered list of `Rule` s and a default policy; callable as a `Classifier`.

    The first rule that matches decides. ``ttl`` overrides the lifetime of any
    policy (seconds, > 0)::

        rules = IntentRules.default().extend(Rule(CachePolicy.NEVER, words=["weather"]))
        rules = IntentRules([Rule(CachePolicy.LONG, pattern=r"^faq:")], default=CachePolicy.NEVER)
    """

    __slots__ = ("_memo", "_overrides", "_ttl", "default_policy", "rules")

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        default: CachePolicy = CachePolicy.SHORT,
        ttl: Mapping[CachePolicy, float] | None = None,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        for rule in self.rules:
            if not isinstance(rule, Rule):
                raise ConfigurationError(f"IntentRules takes Rule objects, not {rule!r}")
        self.default_policy = default
        self._memo: BoundedMemo[str, Classification] = BoundedMemo(_MEMO_SIZE)
        self._ttl = dict(POLICY_TTL)
        self._overrides = dict(ttl or {})
        for policy, seconds in self._overrides.items():
            if policy is CachePolicy.NEVER:
                raise ConfigurationError("the NEVER policy has no lifetime to set")
            if not (isinstance(seconds, (int, float)) and 0 < seconds < math.inf):
                raise ConfigurationError(
                    f"ttl for {policy.name} must be a positive number of seconds, got {seconds!r}"
                )
            self._ttl[policy] = math.ceil(seconds)  # whole seconds, never rounded to 0

    @classmethod
    def default(cls) -> IntentRules:
        """The built-in rules: time-sensitive → NEVER, reference → LONG, code → MEDIUM,
        anything else → SHORT."""
        return cls(DEFAULT_RULES)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> IntentRules:
        """Rules from a TOML file, so operators can tune them without code::

        extends = "default"      # optional: check these rules before the defaults
        default = "short"        # policy when no rule matches
        [ttl]                    # optional lifetimes in seconds
        long = 43200
        [[rule]]
        policy = "never"
        words = ["weather", "stock price"]
        [[rule]]
        policy = "long"
        pattern = "^faq:"
        """
        try:
            with open(path, "rb") as handle:
                doc = tomllib.load(handle)
        except OSError as exc:
            raise ConfigurationError(f"cannot read rules file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"rules file {path} is not valid TOML: {exc}") from exc
        try:
            return cls._from_document(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"rules file {path}: {exc}") from exc

    @classmethod
    def _from_document(cls, doc: Mapping[str, object]) -> IntentRules:
        unknown = set(doc) - {"extends", "default", "ttl", "rule"}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        rules = []
        for entry in doc.get("rule", []):  # type: ignore[attr-defined]
            extra = set(entry) - {"policy", "words", "pattern", "name"}
            if extra:
                raise ValueError(f"unknown rule settings {sorted(extra)}")
            rules.append(
                Rule(
                    _policy_named(entry["policy"]),
                    words=entry.get("words", ()),
                    pattern=entry.get("pattern"),
                    name=entry.get("name", ""),
                )
            )
        extends = doc.get("extends")
        if extends not in (None, "default"):
            raise ValueError(f'extends must be "default", not {extends!r}')
        if extends == "default":
            rules.extend(DEFAULT_RULES)
        ttl = {_policy_named(k): v for k, v in doc.get("ttl", {}).items()}  # type: ignore[attr-defined]
        default = _policy_named(doc.get("default", "short"))
        return cls(rules, default=default, ttl=ttl)

    def extend(self, *rules: Rule) -> IntentRules:
        """A copy with ``rules`` checked *before* the existing ones."""
        return IntentRules((*rules, *self.rules), default=self.default_policy, ttl=self._overrides)

    def with_words(self, policy: CachePolicy, *words: str) -> IntentRules:
        """A copy where ``words`` join the first rule of ``policy`` (a new rule at the
        end, before the default, when there is none)."""
        rules = list(self.rules)
        for i, rule in enumerate(rules):
            if rule.policy is policy and rule.pattern is None:
                rules[i] = Rule(policy, words=(*rule.words, *words), name=rule.name)
                break
        else:
            rules.append(Rule(policy, words=words))
        return IntentRules(rules, default=self.default_policy, ttl=self._overrides)

    def ttl(self, policy: CachePolicy) -> int:
        """The lifetime these rules give ``policy``, in seconds."""
        return self._ttl[policy]

    def classify(self, prompt: str) -> Classification:
        """The policy for ``prompt`` and the rule that chose it.

        Verdicts for short prompts are remembered (the rules never change), so a
        repeated prompt -- every cache hit -- is classified by one dict lookup."""
        verdict = self._memo.get(prompt)
        if verdict is not None:
            return verdict
        verdict = self._classify(prompt)
        if len(prompt) <= _MEMO_PROMPT_CHARS:
            self._memo.put(prompt, verdict)
        return verdict

    def _classify(self, prompt: str) -> Classification:
        for rule in self.rules:
            matched = rule.search(prompt)
            if matched is not None:
                return Classification(rule.policy, self._ttl[rule.policy], f"{rule.name}:{matched}")
        return Classification(self.default_policy, self._ttl[self.default_policy], "default")

    def __call__(self, prompt: str) -> CachePolicy:
        return self.classify(prompt).policy

    def __repr__(self) -> str:
        return f"IntentRules({list(self.rules)!r}, default={self.default_policy})"


_DEFAULT = IntentRules.default()


def _policy_named(name: object) -> CachePolicy:
    try:
        return CachePolicy(str(name).lower())
    except ValueError:
        names = ", ".join(p.value for p in CachePolicy)
        raise ValueError(f"unknown policy {name!r}; policies: {names}") from None


def determine_cache_policy(prompt: str) -> CachePolicy:
    """The default classifier: the policy `IntentRules.default()` gives ``prompt``."""
    return _DEFAULT.classify(prompt).policy


def classify_with(classifier: IntentRules | Classifier, prompt: str) -> Classification:
    """Run any classifier and say which rule decided (a plain callable names itself)."""
    if isinstance(classifier, IntentRules):
        return classifier.classify(prompt)
    policy = classifier(prompt)
    if not isinstance(policy, CachePolicy):
        raise TypeError(f"classifier {classifier!r} returned {policy!r}, not a CachePolicy")
    name = getattr(classifier, "__qualname__", type(classifier).__qualname__)
    return Classification(policy, POLICY_TTL[policy], name)
