"""Matching many intent rules cheaply, with the semantics of one regex per rule.

The prompt is lower-cased and split into words once. A rule becomes a few "units": one
regex (a trie) for its phrases that hold an uncommon word, one per phrase of common words
only ("what time is it"), one per top-level alternative of its pattern. A unit runs only
when the prompt holds the words it needs (`rulegate`), from where its first word occurs
when that is known, and only while its rule could still beat the best one found so far.
Text an exception matches is hidden from the rules. Lower-casing is exact for lower-case
literals; a pattern holding upper-case letters is wrapped in ``(?i:...)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from .rulegate import (
    QUOTE,
    Gate,
    is_common,
    leading_words,
    normal,
    pattern_needs,
    split_alternatives,
    words_gate,
)

__all__ = ["Matcher", "lower_pattern", "words_regex"]

_WORD = re.compile(r"\w+")
_GLOBAL_FLAGS = re.compile(r"\(\?([imsx]+)\)")
_ESCAPE = re.compile(r"\\.")

Spec = tuple[Sequence[str], "str | None"]
"""A rule's or an exception's words and pattern."""


def _piece(char: str) -> str:
    if char == " ":
        return r"\s+"
    if char == "'":
        return f"['{QUOTE}]"
    return re.escape(char)


def _trie(phrases: Iterable[str]) -> str:
    root: dict[str, Any] = {}
    for phrase in phrases:
        node = root
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alternatives = [_piece(char) + emit(sub) for char, sub in sorted(node.items()) if char]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
        return f"(?:{body})?" if "" in node else body

    return emit(root)


def words_regex(words: Iterable[str]) -> str:
    """One regex matching any of ``words`` as whole words, any whitespace between the
    words of a phrase, either apostrophe (a trie, so it stays fast)."""
    return rf"\b(?:{_trie(normal(w) for w in words)})\b"


def lower_pattern(pattern: str) -> str:
    """``pattern`` as a group that matches lower-cased text as the pattern matches any case."""
    flags = _GLOBAL_FLAGS.match(pattern)
    if flags is not None:  # a leading (?x) applies to this pattern alone
        prefix, body = flags.group(1), pattern[flags.end() :]
    else:
        prefix, body = "", pattern
    if any(c.isupper() for c in _ESCAPE.sub("", body)) and "i" not in prefix:
        prefix += "i"
    return f"(?{prefix}:{body})"


def _sense(match: re.Match[str]) -> tuple[int, int]:
    """What an exception hides: its group named ``sense`` when that took part, else all."""
    if "sense" in match.re.groupindex and match.group("sense") is not None:
        return match.span("sense")
    return match.span()


def _clear(start: int, end: int, hidden: list[tuple[int, int]]) -> bool:
    return all(end <= h_start or start >= h_end for h_start, h_end in hidden)


_NONE = 1 << 30


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not _is_word(chr(c))})


_LONG = 65536  # past this many characters, words are listed without copies of the text


def _present(text: str, vocabulary: frozenset[str]) -> frozenset[str]:
    """The words of ``vocabulary`` that occur in ``text`` as whole words (``\\w+``)."""
    if len(text) > _LONG:  # a long prompt: no copy of it, no list of all its words
        longest = max(map(len, vocabulary), default=0)
        return frozenset(
            match.group()
            for match in _WORD.finditer(text)
            if match.end() - match.start() <= longest and match.group() in vocabulary
        )
    words = text.translate(_SEPARATORS).split() if text.isascii() else _WORD.findall(text)
    return vocabulary.intersection(words)


class _Unit(NamedTuple):
    """One regex of a rule or exception: its words, or one alternative of its pattern."""

    owner: int
    regex: re.Pattern[str]
    leads: tuple[str, ...] | None  # every match begins with one of these texts
    needs: tuple[Gate, ...]  # every match holds a word of each of these sets


def _anchored(regex: re.Pattern[str], leads: tuple[str, ...], text: str) -> list[re.Match[str]]:
    """The matches of ``regex`` that begin where one of ``leads`` occurs in ``text``."""
    found = []
    for lead in leads:
        at = text.find(lead)
        while at >= 0:
            match = regex.match(text, at)
            if match is not None:
                found.append(match)
            at = text.find(lead, at + 1)
    return found


class Matcher:
    """Finds the first of ``rules`` that matches a prompt outside what ``exceptions`` match.

    Owners are numbered exceptions first (0 ..), then rules; a lower number wins. Each
    regex runs only on prompts holding the words it needs (`rulegate`), and from where
    its first word occurs when that is known."""

    __slots__ = ("_always", "_exceptions", "_gates", "_units", "_vocabulary")

    def __init__(self, exceptions: Sequence[Spec], rules: Sequence[Spec]) -> None:
        self._exceptions = len(exceptions)
        self._units: list[_Unit] = []
        self._always = 0  # units run on every prompt, as bits
        self._gates: dict[str, int] = {}  # word -> the units that need it, as bits
        for owner, (words, pattern) in enumerate([*exceptions, *rules]):
            self._add_words(owner, words)
            for part in split_alternatives(pattern) if pattern is not None else ():
                lowered = lower_pattern(part)
                first = leading_words(lowered)
                leads = tuple(sorted(first)) if first and len(first) <= 6 else None
                needs = pattern_needs(lowered)
                unit = _Unit(owner, re.compile(lowered), leads, needs)
                self._add(unit, needs[0] if needs else None)
        self._vocabulary = frozenset(w for unit in self._units for need in unit.needs for w in need)
        """Every word some unit needs: a prompt's other words are dropped at once."""

    def _add_words(self, owner: int, words: Sequence[str]) -> None:
        """One unit for the phrases holding an uncommon word, one per other phrase."""
        rare: list[str] = []
        others: list[str] = []
        for word in words:
            runs = _WORD.findall(normal(word))
            (rare if not all(map(is_common, runs)) else others).append(word)
        if rare:
            gate = words_gate(rare)
            unit = _Unit(
                owner, re.compile(words_regex(rare)), None, () if gate is None else (gate,)
            )
            self._add(unit, gate)
        for word in others:
            text = normal(word)
            runs = _WORD.findall(text)
            leads = (runs[0],) if runs and text.startswith(runs[0]) else None
            needs = [frozenset({run}) for run in sorted(set(runs), key=len, reverse=True)]
            unit = _Unit(owner, re.compile(words_regex([word])), leads, tuple(needs[:3]))
            self._add(unit, needs[0] if needs else None)

    def _add(self, unit: _Unit, gate: Gate | None) -> None:
        bit = 1 << len(self._units)
        self._units.append(unit)
        if gate is None:
            self._always |= bit
        for word in gate or ():
            self._gates[word] = self._gates.get(word, 0) | bit

    def first(self, prompt: str) -> tuple[int, str, tuple[int, ...]]:
        """(the number of the first rule that matches, or -1; the matched text; the numbers
        of the exceptions that hid text)."""
        text = prompt.lower()
        skip = self._exceptions
        due = self._always
        gates = self._gates
        words = _present(text, self._vocabulary)  # the ones any unit needs
        for word in words:
            if word in gates:
                due |= gates[word]
        hidden: list[tuple[int, int]] = []
        fired: list[int] = []
        units = self._units
        best, matched = _NONE, ""
        while due:
            low = due & -due  # the next unit due, in order
            due ^= low
            owner, regex, leads, needs = units[low.bit_length() - 1]
            if owner >= best:
                break
            for need in needs:
                if need.isdisjoint(words):
                    break
            else:
                if leads is None:
                    matches: Iterable[re.Match[str]] = regex.finditer(text)
                else:
                    matches = _anchored(regex, leads, text)
                if owner >= skip:
                    for match in matches:
                        if not hidden or _clear(match.start(), match.end(), hidden):
                            best, matched = owner, match.group(0)
                            break
                    continue
                for match in matches:
                    start, end = _sense(match)
                    if end > start:
                        hidden.append((start, end))
                        if owner not in fired:
                            fired.append(owner)
        rule = best - skip if best < _NONE else -1
        return rule, matched, tuple(fired)
