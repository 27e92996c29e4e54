"""Which words a regex needs, read from the parse behind ``re.compile``: a rule's regex then
runs only on prompts holding them, from where its first word occurs. The reading is
conservative: anything it cannot prove means "always run" or "search the whole prompt"."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

if sys.version_info >= (3, 11):  # the parser behind re.compile
    from re import _constants as _sre  # type: ignore[attr-defined, unused-ignore]
    from re import _parser as _sre_parse  # type: ignore[attr-defined, unused-ignore]
else:  # pragma: no cover
    import sre_constants as _sre
    import sre_parse as _sre_parse

__all__ = [
    "QUOTE",
    "Gate",
    "is_common",
    "leading_words",
    "normal",
    "pattern_needs",
    "split_alternatives",
    "words_gate",
]

_WORD = re.compile(r"\w+")


QUOTE = "\N{RIGHT SINGLE QUOTATION MARK}"  # typed for an apostrophe


def normal(phrase: str) -> str:
    """A phrase as rules compare it: lower case, single spaces, plain apostrophes."""
    return " ".join(phrase.replace(QUOTE, "'").lower().split())


_ENDS = {"AT_BOUNDARY", "AT_END", "AT_END_STRING"}
_STARTS = {"AT_BOUNDARY", "AT_BEGINNING", "AT_BEGINNING_STRING"}
_COMMON = frozenset(
    [
        "a",
        "about",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "best",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "get",
        "good",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "just",
        "like",
        "make",
        "many",
        "more",
        "most",
        "much",
        "my",
        "new",
        "no",
        "not",
        "now",
        "of",
        "on",
        "one",
        "or",
        "other",
        "our",
        "people",
        "she",
        "so",
        "some",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "time",
        "to",
        "up",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)

Gate = frozenset[str]


@functools.lru_cache(maxsize=256)
def _parsed(pattern: str) -> tuple[Any, ...]:
    """The parse of ``pattern``: (op, argument) pairs, as ``re.compile`` reads it."""
    return tuple(_sre_parse.parse(pattern).data)


def _cost(gate: Gate) -> int:
    """How often a gate lets a prompt through, roughly: common words cost more."""
    common = sum(1 for word in gate if is_common(word))
    return 100 * common + len(gate) * 4


def _best(gates: Iterable[Gate]) -> Gate | None:
    return min(gates, key=_cost, default=None)


def _is_word_char(code: int) -> bool:
    return bool(_WORD.fullmatch(chr(code)))


def _nonword_class(op: Any, av: Any) -> bool:
    if op is _sre.LITERAL:
        return not _is_word_char(av)
    if op is _sre.IN:
        return all(
            (kind is _sre.LITERAL and not _is_word_char(value))
            or (kind is _sre.CATEGORY and str(value) in {"CATEGORY_SPACE", "CATEGORY_NOT_WORD"})
            for kind, value in av
        )
    return False


def _ends_word(items: Sequence[Any]) -> bool:
    """Whether what follows a literal word cannot continue it (conservative)."""
    if not items:
        return False
    op, av = items[0]
    if op is _sre.AT:
        return str(av) in _ENDS
    if _nonword_class(op, av):
        return True
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
        low, _, sub = av
        starts = _ends_word(list(sub.data))  # one repetition begins with a non-word
        return starts if low >= 1 else starts and _ends_word(items[1:])
    if op is _sre.SUBPATTERN:
        return _ends_word([*av[-1].data, *items[1:]])
    if op is _sre.BRANCH:
        return all(_ends_word([*alt.data, *items[1:]]) for alt in av[1])
    return False


def _starts_word(op: Any, av: Any, bounded: bool) -> bool:
    """Whether a word cannot continue across the end of this item, so a word that follows
    begins there (``bounded``: whether that held before the item)."""
    if op is _sre.AT:
        return str(av) in _STARTS
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
        low, _, sub = av
        ends = _ends_in_nonword(list(sub.data))
        return ends if low >= 1 else ends and bounded
    if op is _sre.SUBPATTERN:
        return _ends_in_nonword(list(av[-1].data)) or (bounded and not av[-1].data)
    if op is _sre.BRANCH:
        return all(_ends_in_nonword(list(alt.data)) for alt in av[1])
    return _nonword_class(op, av)


def _ends_in_nonword(items: list[Any]) -> bool:
    """Whether every match of ``items`` ends with a non-word (or at a boundary)."""
    if not items:
        return False
    op, av = items[-1]
    return _starts_word(op, av, False)


def _gate(items: Sequence[Any], tail: Sequence[Any], bounded: bool) -> Gate | None:
    """The cheapest set of words one of which every match of ``items`` (followed by
    ``tail``) holds as a whole word; None when none can be proven."""
    return _best(_gates(items, tail, bounded))


def _gates(items: Sequence[Any], tail: Sequence[Any], bounded: bool) -> list[Gate]:
    """Sets of words such that every match of ``items`` holds one word of each set."""
    found: list[Gate] = []
    i = 0
    while i < len(items):
        op, av = items[i]
        rest = [*items[i + 1 :], *tail]
        if op is _sre.LITERAL and _is_word_char(av):
            j = i
            while j < len(items) and items[j][0] is _sre.LITERAL and _is_word_char(items[j][1]):
                j += 1
            word = "".join(chr(code) for _, code in items[i:j]).lower()
            after = [*items[j:], *tail]
            if bounded and _ends_word(after):
                found.append(frozenset({word}))
            elif bounded and after and after[0][0] is _sre.MAX_REPEAT:  # a plural: "scores?"
                low, high, sub = after[0][1]
                one: Any = sub.data[0] if len(sub.data) == 1 else (None, None)
                plural = one[0] is _sre.LITERAL and _is_word_char(one[1])
                if (low, high) == (0, 1) and plural and _ends_word(after[1:]):
                    found.append(frozenset({word, word + chr(one[1]).lower()}))
            bounded, i = False, j
            continue
        if op is _sre.SUBPATTERN:
            gate = _gate(av[-1].data, rest, bounded)
            if gate is not None:
                found.append(gate)
        elif op is _sre.BRANCH:
            gates = [_gate(alt.data, rest, bounded) for alt in av[1]]
            if all(g is not None for g in gates):
                found.append(frozenset().union(*gates))  # type: ignore[arg-type]
        bounded = _starts_word(op, av, bounded)
        i += 1
    return found


def is_common(word: str) -> bool:
    """Whether ``word`` occurs in most prompts (so it is a poor gate)."""
    return word in _COMMON or len(word) < 3


@functools.lru_cache(maxsize=1024)
def pattern_needs(pattern: str) -> tuple[Gate, ...]:
    """Sets of words such that every match of ``pattern`` holds a word of each set, the
    least common sets first (a few of them)."""
    try:
        items: list[Any] = list(_parsed(pattern))
        while len(items) == 1 and items[0][0] is _sre.SUBPATTERN:
            items = list(items[0][1][-1].data)
        return tuple(sorted(set(_gates(items, [], False)), key=_cost)[:3])
    except Exception:
        return ()


def words_gate(words: Iterable[str]) -> Gate | None:
    """For each word or phrase, its least common whole word; None for one without any."""
    gate = set()
    for phrase in words:
        runs = _WORD.findall(normal(phrase))
        if not runs:
            return None
        gate.add(min(runs, key=lambda run: (is_common(run), -len(run))))
    return frozenset(gate)


@functools.lru_cache(maxsize=1024)
def split_alternatives(pattern: str) -> tuple[str, ...]:
    """The top-level alternatives of ``pattern`` (``a|b`` → ``[a, b]``), each keeping
    a leading flags group such as ``(?x)``; ``[pattern]`` when it has none or when
    splitting is not safe (comments, references between groups)."""
    flags = re.match(r"\(\?[aiLmsux]+\)", pattern)
    prefix = flags.group(0) if flags else ""
    body = pattern[len(prefix) :]
    if ("#" in body and "x" in prefix) or re.search(r"\\[1-9]|\(\?P=|\(\?\(", body):
        return (pattern,)
    parts, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(body):
        char = body[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if body[i + 1 : i + 2] == "]" or body[i + 1 : i + 3] == "^]":
                i += 2 if body[i + 1] == "]" else 3
                continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    parts.append(body[start:])
    if len(parts) == 1:
        return (pattern,)
    return tuple(prefix + part for part in parts)


def _leads(items: Sequence[Any], bounded: bool) -> frozenset[str] | None:
    """The words one of which every match begins with, where a word begins."""
    while items:
        op, av = items[0]
        if op is _sre.AT and str(av) in _STARTS:
            bounded, items = True, items[1:]
        elif op is _sre.SUBPATTERN:
            items = [*av[-1].data, *items[1:]]
        else:
            break
    if not items or not bounded:
        return None
    op, av = items[0]
    if op is _sre.BRANCH:
        found: set[str] = set()
        for alt in av[1]:
            leads = _leads([*alt.data, *items[1:]], bounded)
            if leads is None:
                return None
            found |= leads
        return frozenset(found)
    j = 0
    while j < len(items) and items[j][0] is _sre.LITERAL and _is_word_char(items[j][1]):
        j += 1
    if j == 0:
        return None
    return frozenset({"".join(chr(code) for _, code in items[:j]).lower()})


@functools.lru_cache(maxsize=1024)
def leading_words(pattern: str) -> frozenset[str] | None:
    """When every match of ``pattern`` begins, at a word boundary, with one of a few
    literal texts: those texts (a match can then be tried only where they occur)."""
    try:
        return _leads(list(_parsed(pattern)), False)
    except Exception:
        return None
