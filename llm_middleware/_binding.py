"""Binding a call's arguments to names: fast for plain parameters, exact always."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["Binder"]

_PLAIN = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Binder:
    """``bind(args, kwargs)`` → the bound arguments with defaults applied, as
    `inspect.Signature.bind` + ``apply_defaults`` give them, or ``None`` when the
    arguments do not fit. Signatures of plain parameters (no ``*args``, ``**kwargs``
    or positional-only) take a path without `inspect`'s per-call bookkeeping."""

    __slots__ = ("defaults", "names", "positional", "signature", "simple")

    def __init__(self, signature: inspect.Signature) -> None:
        params = list(signature.parameters.values())
        self.signature = signature
        self.simple = all(p.kind in _PLAIN for p in params)
        self.positional = tuple(
            p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        self.names = frozenset(p.name for p in params)
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if self.simple and len(args) <= len(self.positional):
            arguments = dict(zip(self.positional, args, strict=False))
            for name, value in kwargs.items():
                if name in arguments or name not in self.names:
                    return self._exact(args, kwargs)
                arguments[name] = value
            if len(arguments) < len(self.names):
                for name, default in self.defaults.items():
                    arguments.setdefault(name, default)
                if len(arguments) < len(self.names):  # a required argument is missing
                    return None
            return arguments
        return self._exact(args, kwargs)

    def _exact(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        bound.apply_defaults()
        return dict(bound.arguments)
