"""Intent policy: which cache lifetime a prompt gets, decided by ordered word rules."""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from .bounded import BoundedMemo
from .errors import ConfigurationError
from .rulematch import Matcher, lower_pattern, words_regex

__all__ = [
    "POLICY_TTL",
    "CachePolicy",
    "Classification",
    "Classifier",
    "Except",
    "IntentModel",
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


IntentModel = Callable[[str], "CachePolicy | Classification"]
"""A model asked beside the rules (`IntentRules.with_model`): prompt → policy."""


def _regex_source(words: Sequence[str], pattern: str | None, what: str, kind: str) -> str:
    if isinstance(words, str):
        raise ConfigurationError(f"{kind}.words must be a list of words, not the string {words!r}")
    for word in words:
        if not isinstance(word, str) or not word.split():
            raise ConfigurationError("an intent word or phrase must not be empty")
    alternatives = [words_regex(words)] if words else []
    if pattern is not None:
        alternatives.append(lower_pattern(pattern))
        try:
            re.compile(alternatives[-1])
        except re.error as exc:
            raise ConfigurationError(f"bad intent pattern {pattern!r}: {exc}") from exc
    if not alternatives:
        raise ConfigurationError(f"{what} has no words and no pattern")
    return "|".join(alternatives)


@dataclass(frozen=True)
class Rule:
    """One intent rule: prompts containing any of ``words`` (whole words or
    phrases, case-insensitive) or matching ``pattern`` (a regex) get ``policy``."""

    policy: CachePolicy
    words: Sequence[str] = ()
    pattern: str | None = None
    name: str = ""
    _source: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        source = _regex_source(self.words, self.pattern, f"rule for {self.policy.name}", "Rule")
        object.__setattr__(self, "words", tuple(self.words))
        object.__setattr__(self, "_source", source)
        if not self.name:
            object.__setattr__(self, "name", self.policy.value)

    @functools.cached_property
    def _regex(self) -> re.Pattern[str]:
        """The whole rule as one regex, for lower-cased text (classifying uses `Matcher`)."""
        return re.compile(self._source)

    def search(self, text: str) -> str | None:
        """The matched text, lower-cased, or ``None``."""
        match = self._regex.search(text.lower())
        return None if match is None else match.group(0)


@dataclass(frozen=True)
class Except:
    """A sense of a word that no rule should see: text matching ``words`` or ``pattern``
    (its group named ``sense`` when it has one) is hidden from every rule ("live wire"
    is not "live")."""

    name: str
    words: Sequence[str] = ()
    pattern: str | None = None
    _source: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        source = _regex_source(self.words, self.pattern, f"exception {self.name!r}", "Except")
        object.__setattr__(self, "words", tuple(self.words))
        object.__setattr__(self, "_source", source)

    @functools.cached_property
    def _regex(self) -> re.Pattern[str]:
        """The whole exception as one regex, for lower-cased text."""
        return re.compile(self._source)


_MEMO_SIZE = 4096
_MEMO_PROMPT_CHARS = 4096


class IntentRules:
    """Ordered `Rule` s, `Except` ions and a default policy; callable as a `Classifier`.

    Exceptions blank the senses of words that do not mean what a rule means; then the
    first rule that matches decides. ``ttl`` overrides the lifetime of any policy
    (seconds, > 0)::

        rules = IntentRules.default().extend(Rule(CachePolicy.NEVER, words=["weather"]))
        rules = IntentRules([Rule(CachePolicy.LONG, pattern=r"^faq:")], default=CachePolicy.NEVER)
    """

    __slots__ = (
        "_matcher",
        "_memo",
        "_model",
        "_overrides",
        "_ttl",
        "default_policy",
        "exceptions",
        "rules",
    )

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        default: CachePolicy = CachePolicy.SHORT,
        ttl: Mapping[CachePolicy, float] | None = None,
        exceptions: Iterable[Except] = (),
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        for rule in self.rules:
            if not isinstance(rule, Rule):
                raise ConfigurationError(f"IntentRules takes Rule objects, not {rule!r}")
        self.exceptions: tuple[Except, ...] = tuple(exceptions)
        for exception in self.exceptions:
            if not isinstance(exception, Except):
                raise ConfigurationError(f"exceptions must be Except objects, not {exception!r}")
        self.default_policy = default
        self._memo: BoundedMemo[str, Classification] = BoundedMemo(_MEMO_SIZE)
        self._matcher: Matcher | None = None
        self._model: IntentModel | None = None
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
        """The built-in rules (``llm_middleware/data/default-rules.toml``): what changes
        by the minute → NEVER, office holders and records → SHORT, reference → LONG,
        code → MEDIUM, anything else → SHORT."""
        from .rulesfile import default_rules

        rules, exceptions = default_rules()
        return cls(rules, exceptions=exceptions)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> IntentRules:
        """Rules from a TOML file, so operators can tune them without code::

        extends = "default"      # optional: check these rules before the defaults
        default = "short"        # policy when no rule matches
        [ttl]                    # optional lifetimes in seconds
        long = 43200
        [[exception]]            # a sense no rule should see
        name = "live-wire"
        words = ["live wire"]
        [[rule]]
        policy = "never"
        words = ["weather", "stock price"]
        [[rule]]
        policy = "long"
        pattern = "^faq:"
        """
        from .rulesfile import read_rules_file

        rules, exceptions, default, ttl = read_rules_file(path)
        return cls(rules, default=default, ttl=ttl, exceptions=exceptions)

    def _copy(self, rules: Iterable[Rule], exceptions: Iterable[Except]) -> IntentRules:
        copy = IntentRules(
            rules, default=self.default_policy, ttl=self._overrides, exceptions=exceptions
        )
        copy._model = self._model
        return copy

    def extend(self, *rules: Rule) -> IntentRules:
        """A copy with ``rules`` checked *before* the existing ones."""
        return self._copy((*rules, *self.rules), self.exceptions)

    def with_exceptions(self, *exceptions: Except) -> IntentRules:
        """A copy where ``exceptions`` blank text too, before any rule is checked."""
        return self._copy(self.rules, (*exceptions, *self.exceptions))

    def with_words(self, policy: CachePolicy, *words: str) -> IntentRules:
        """A copy where ``words`` join the first rule of ``policy`` (a new rule at the
        end, before the default, when there is none)."""
        rules = list(self.rules)
        for i, rule in enumerate(rules):
            if rule.policy is policy:
                rules[i] = Rule(policy, (*rule.words, *words), rule.pattern, rule.name)
                break
        else:
            rules.append(Rule(policy, words=words))
        return self._copy(rules, self.exceptions)

    def with_model(self, model: IntentModel) -> IntentRules:
        """A copy where ``model`` (any ``Callable[[str], CachePolicy]``) is asked too, and
        the shorter of the two lifetimes wins: a model can only make the cache more careful.
        The verdict's rule says which decided (``model:<name>`` when the model did)."""
        if not callable(model):
            raise ConfigurationError(f"with_model takes a callable, not {model!r}")
        copy = self._copy(self.rules, self.exceptions)
        copy._model = model
        return copy

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
        if self._model is not None:
            verdict = _more_careful(verdict, self._model, prompt, self._ttl)
        if len(prompt) <= _MEMO_PROMPT_CHARS:
            self._memo.put(prompt, verdict)
        return verdict

    def _classify(self, prompt: str) -> Classification:
        matcher = self._matcher
        if matcher is None:
            matcher = self._matcher = _matcher(self.exceptions, self.rules)
        index, matched, fired = matcher.first(prompt)
        unless = f" except {','.join(self.exceptions[i].name for i in fired)}" if fired else ""
        if index < 0:
            return Classification(
                self.default_policy, self._ttl[self.default_policy], "default" + unless
            )
        rule = self.rules[index]
        return Classification(rule.policy, self._ttl[rule.policy], f"{rule.name}:{matched}{unless}")

    def __call__(self, prompt: str) -> CachePolicy:
        return self.classify(prompt).policy

    def __repr__(self) -> str:
        return f"IntentRules({list(self.rules)!r}, default={self.default_policy})"


@functools.lru_cache(maxsize=32)
def _matcher(exceptions: tuple[Except, ...], rules: tuple[Rule, ...]) -> Matcher:
    """One matcher per set of rules (copies of the defaults share it)."""
    return Matcher(
        [(e.words, e.pattern) for e in exceptions], [(r.words, r.pattern) for r in rules]
    )


def _more_careful(
    verdict: Classification, model: IntentModel, prompt: str, ttl: Mapping[CachePolicy, int]
) -> Classification:
    """The rules' verdict, or the model's when the model gives the shorter lifetime."""
    answer = model(prompt)
    if isinstance(answer, Classification):
        policy, label = answer.policy, answer.rule
    elif isinstance(answer, CachePolicy):
        named = getattr(model, "name", None) or getattr(model, "__qualname__", None)
        policy, label = answer, str(named or type(model).__qualname__)
    else:
        raise TypeError(f"intent model {model!r} returned {answer!r}, not a CachePolicy")
    if ttl[policy] < verdict.ttl:
        return Classification(policy, ttl[policy], f"model:{label}")
    return verdict


_DEFAULT: list[IntentRules] = []  # made at the first call: reading the rules file takes time


def determine_cache_policy(prompt: str) -> CachePolicy:
    """The default classifier: the policy `IntentRules.default()` gives ``prompt``."""
    if not _DEFAULT:
        _DEFAULT.append(IntentRules.default())
    return _DEFAULT[0].classify(prompt).policy


def classify_with(classifier: IntentRules | Classifier, prompt: str) -> Classification:
    """Run any classifier and say which rule decided (a plain callable names itself)."""
    if isinstance(classifier, IntentRules):
        return classifier.classify(prompt)
    policy: object = classifier(prompt)
    if isinstance(policy, Classification):  # a model that names what decided
        return policy
    if not isinstance(policy, CachePolicy):
        raise TypeError(f"classifier {classifier!r} returned {policy!r}, not a CachePolicy")
    name = getattr(classifier, "__qualname__", type(classifier).__qualname__)
    return Classification(policy, POLICY_TTL[policy], name)
