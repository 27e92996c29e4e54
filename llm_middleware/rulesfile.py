"""Intent rules as data: the TOML rules-file format, and the built-in rules shipped in it."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping
from importlib import resources
from typing import Any

from .errors import ConfigurationError
from .policy import CachePolicy, Except, Rule

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DEFAULT_RULES_FILE", "default_rules", "parse_rules", "read_rules_file"]

DEFAULT_RULES_FILE = "data/default-rules.toml"
"""Where the built-in rules live, relative to the package."""

_SETTINGS = {"extends", "default", "ttl", "rule", "exception"}
_RULE_SETTINGS = {"policy", "words", "pattern", "name"}
_EXCEPTION_SETTINGS = {"words", "pattern", "name"}

Parsed = tuple[list[Rule], list[Except], CachePolicy, dict[CachePolicy, float]]


def _policy_named(name: object) -> CachePolicy:
    try:
        return CachePolicy(str(name).lower())
    except ValueError:
        names = ", ".join(p.value for p in CachePolicy)
        raise ValueError(f"unknown policy {name!r}; policies: {names}") from None


def _table(entry: object, what: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping):
        raise ValueError(f"each [[{what}]] must be a table, not {entry!r}")
    extra = set(entry) - allowed
    if extra:
        raise ValueError(f"unknown {what} settings {sorted(extra)}")
    return entry


def parse_rules(doc: Mapping[str, Any]) -> Parsed:
    """Rules, exceptions, default policy and lifetimes from a parsed rules document."""
    unknown = set(doc) - _SETTINGS
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    rules = []
    for entry in doc.get("rule", []):
        entry = _table(entry, "rule", _RULE_SETTINGS)
        rules.append(
            Rule(
                _policy_named(entry["policy"]),
                words=entry.get("words", ()),
                pattern=entry.get("pattern"),
                name=entry.get("name", ""),
            )
        )
    exceptions = []
    for entry in doc.get("exception", []):
        entry = _table(entry, "exception", _EXCEPTION_SETTINGS)
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ValueError("each [[exception]] needs a name (cache.policy reports it)")
        exceptions.append(
            Except(entry["name"], words=entry.get("words", ()), pattern=entry.get("pattern"))
        )
    extends = doc.get("extends")
    if extends not in (None, "default"):
        raise ValueError(f'extends must be "default", not {extends!r}')
    if extends == "default":
        base_rules, base_exceptions = default_rules()
        rules.extend(base_rules)
        exceptions.extend(base_exceptions)
    ttl = {_policy_named(k): v for k, v in doc.get("ttl", {}).items()}
    return rules, exceptions, _policy_named(doc.get("default", "short")), ttl


def _load(path: str | os.PathLike[str], text: bytes) -> Parsed:
    try:
        doc = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"rules file {path} is not valid TOML: {exc}") from exc
    try:
        return parse_rules(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"rules file {path}: {exc}") from exc


def read_rules_file(path: str | os.PathLike[str]) -> Parsed:
    """Parse a TOML rules file; any mistake in it is a `ConfigurationError`."""
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigurationError(f"cannot read rules file {path}: {exc.strerror}") from exc
    return _load(path, text)


@functools.cache
def default_rules() -> tuple[tuple[Rule, ...], tuple[Except, ...]]:
    """The built-in rules and exceptions, read once from the package's rules file."""
    text = resources.files("llm_middleware").joinpath(DEFAULT_RULES_FILE).read_bytes()
    rules, exceptions, _, _ = _load(DEFAULT_RULES_FILE, text)
    return tuple(rules), tuple(exceptions)
