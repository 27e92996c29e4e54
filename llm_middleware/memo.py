"""The memo of decisions: "these arguments give this key and this policy".

The chain's steps decide a call from its arguments, the process configuration and
the controls around it. When every step declares that its outcome depends on
nothing else (``remembers = True``, see ``chain``), the decision can be kept: a
repeated call of short scalar arguments (the common ``chat(prompt, model=...)``) or
of plain JSON data (``chat(messages)``: lists and dicts of strings and numbers,
known by a digest of their JSON) skips the steps and goes straight to the lookup.

Pure and I/O-free: nothing here reads a tier, writes an event or counts. The
caller hands in the configuration's generation, so a decision made under another
configuration is never taken.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .argkey import ArgumentKey, fingerprint
from .bounded import BoundedMemo

__all__ = ["Decision", "DecisionMemo"]

_MAX_DECISIONS = 4096


class Decision(NamedTuple):
    """What the steps decided for a call: its key, its policy's name (as events
    write it) and the configuration generation it was made under."""

    key: str
    policy: str
    generation: int = 0


class DecisionMemo:
    """The decisions of one decorated function's calls, by the arguments' `argument_key`.

    Bounded (`BoundedMemo`); thread-safe as a dict is (a lost race only costs a
    second run of the steps)."""

    __slots__ = ("_decisions",)

    def __init__(self, size: int = _MAX_DECISIONS) -> None:
        self._decisions: BoundedMemo[ArgumentKey, Decision] = BoundedMemo(size)

    def remember(
        self,
        arguments: ArgumentKey,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str,
        policy: str,
        generation: int,
    ) -> None:
        """Keep the decision ``(key, policy)`` for the arguments ``arguments`` (their
        `argument_key`) stands for. ``generation``: the configuration's, read before the
        steps ran. Data that another thread changed while the steps ran (its
        fingerprint is no longer ``arguments``) is not kept: its key may be the other
        content's."""
        if type(arguments) is bytes and fingerprint(args, kwargs) != arguments:
            return
        self._decisions.put(arguments, Decision(key, policy, generation))

    def recall(self, arguments: ArgumentKey, generation: int) -> Decision | None:
        """The decision kept for ``arguments`` (a `argument_key`), if it was made under the
        configuration ``generation``."""
        decision = self._decisions.get(arguments)
        if decision is None or decision.generation != generation:
            return None
        return decision
