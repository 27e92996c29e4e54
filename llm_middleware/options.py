"""`CacheOptions`: the decorator's options, spelled out once, validated at decoration.

`cache_by_intent`, `decorate` (for integrations) and the per-function state all take
one frozen `CacheOptions`. Adding an option means a field here (with its check in
`CacheOptions.__post_init__`), its keyword in the decorator's typed overload (a test
holds the two equal) and its line in the docs.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .chain import DEFAULT_TIERS_FOR, Step
from .errors import DecorationError
from .policy import CachePolicy, Classifier, IntentRules
from .semantic.match import SemanticMatch
from .stampede import StampedeLock
from .tiers import MultiLevelCache

__all__ = ["CacheOptions", "Namespace", "PromptArg"]

Namespace = str | Callable[[Mapping[str, Any]], "str | None"]
PromptArg = str | Callable[[Mapping[str, Any]], str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CacheOptions:
    """What `cache_by_intent` was told, checked and normalized (see its docstring for
    what each option does). Misuse raises `DecorationError` at once."""

    cache: MultiLevelCache | None = None
    rules: IntentRules | Classifier | None = None
    prompt_arg: PromptArg | None = None
    ignore: tuple[str, ...] = ()
    namespace: Namespace | None = None
    tiers_for: Mapping[CachePolicy, int | None] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_TIERS_FOR)
    )
    steps: tuple[Step, ...] = ()
    namespace_required: bool | None = None
    lock: StampedeLock | None = None
    stale_ttl: float = 0.0
    name: str | None = None
    semantic: SemanticMatch | bool | None = None

    @classmethod
    def of(cls, **options: Any) -> CacheOptions:
        """Options from the decorator's keywords; an unknown keyword is a
        `DecorationError` naming the valid ones."""
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise DecorationError(
                f"cache_by_intent got unknown option(s) {unknown}; valid: {', '.join(names)}"
            )
        return cls(**options)

    def __post_init__(self) -> None:
        def normalize(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if self.cache is not None and not isinstance(self.cache, MultiLevelCache):
            raise DecorationError(f"cache= takes a MultiLevelCache, not {self.cache!r}")
        for option in ("prompt_arg", "namespace"):
            value = getattr(self, option)
            if value is not None and not (isinstance(value, str) or callable(value)):
                raise DecorationError(f"{option}= takes a name or a callable, not {value!r}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise DecorationError(f"name= takes a non-empty string, got {self.name!r}")
        if self.namespace_required is not None and type(self.namespace_required) is not bool:
            raise DecorationError(
                f"namespace_required= takes True, False or None, not {self.namespace_required!r}"
            )
        if self.semantic is not None and not isinstance(self.semantic, (bool, SemanticMatch)):
            raise DecorationError(
                f"semantic= takes a SemanticMatch, True or False, not {self.semantic!r}"
            )

        ignore: Iterable[object] | str = self.ignore
        if isinstance(ignore, str) or not all(isinstance(i, str) for i in ignore):
            raise DecorationError("ignore= takes a sequence of argument names")
        normalize("ignore", tuple(ignore))
        steps: Sequence[object] = tuple(self.steps)
        for step in steps:
            if not callable(step):
                raise DecorationError(f"steps= takes callables, not {step!r}")
        normalize("steps", steps)
        merged = {**DEFAULT_TIERS_FOR, **(self.tiers_for or {})}
        for policy, depth in merged.items():
            if not isinstance(policy, CachePolicy):
                raise DecorationError(f"tiers_for= is keyed by CachePolicy, not {policy!r}")
            if depth is not None and (type(depth) is not int or depth < 1):
                raise DecorationError(f"tiers_for[{policy}] must be a positive int or None")
        normalize("tiers_for", types.MappingProxyType(merged))  # read-only, as the rest
        lock: object = self.lock
        if lock is True:
            lock = StampedeLock()
        elif lock is False:
            lock = None
        elif lock is not None and not isinstance(lock, StampedeLock):
            raise DecorationError(f"lock= takes True/False or a StampedeLock, not {lock!r}")
        normalize("lock", lock)
        if not (isinstance(self.stale_ttl, (int, float)) and self.stale_ttl >= 0):
            raise DecorationError(f"stale_ttl must be >= 0 seconds, got {self.stale_ttl!r}")
        normalize("stale_ttl", float(self.stale_ttl))
        if self.rules is not None and not (
            isinstance(self.rules, IntentRules) or callable(self.rules)
        ):
            raise DecorationError(f"rules= takes IntentRules or a classifier, not {self.rules!r}")
