"""Who a decorated callable is, as its cache keys see it.

A plain function is its module and qualified name. That is not enough for:

- **closures**: every function a factory makes (``def make_bot(system): ...``) has
  the same qualified name (``make_bot.<locals>.ask``). The values a closure captures
  that are plain JSON data (text, numbers, lists and dicts of them) join its identity,
  read once, at decoration: a later rebinding of a captured variable is not seen. A
  closure that captures anything else (a client, an object) is warned about at
  decoration: only an explicit ``name=`` or a ``namespace=`` can tell such closures
  apart. Captured functions without closures of their own, classes and modules are
  code, not data: they are left out silently, as are the ``__class__`` cell of
  methods that call ``super()`` and the variables the function assigns itself
  (``nonlocal`` state such as a call counter).
- **functools.partial**: the underlying function's identity, plus the bound
  arguments (which must be plain JSON data, as a closure's captures).
- **callable instances**: the instance's class; an instance whose answers depend on
  its state defines ``__cache_key__``, read on every call as for methods.

``name=`` replaces all of this with an explicit identity.
"""

from __future__ import annotations

import dis
import functools
import hashlib
import inspect
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from ._plain import is_plain
from .errors import CacheIdentityWarning
from .keys import canonical_json

__all__ = ["Identity", "identify"]


class Identity(NamedTuple):
    """``name``: the function in events; ``key_name``: the function in its keys
    (``name`` and the data it captured); ``owner``: a callable instance, whose
    ``__cache_key__`` joins every key as a method's instance does."""

    name: str
    key_name: str
    owner: object = None


def _code(value: Any) -> bool:
    """Captured code rather than data: the same in every closure a factory makes."""
    if isinstance(value, (type, types.ModuleType, types.BuiltinFunctionType)):
        return True
    return isinstance(value, types.FunctionType) and value.__closure__ is None


def _assigned(code: types.CodeType) -> set[str]:
    """The captured variables a function assigns itself (``nonlocal`` counters)."""
    return {
        op.argval
        for op in dis.get_instructions(code)
        if op.opname in ("STORE_DEREF", "DELETE_DEREF")
    }


def _captured(func: Any) -> tuple[dict[str, Any], list[str]]:
    """A closure's captured plain data by variable name, and the names of the other
    captured values. Variables the function assigns itself are its own state (a
    call counter), not what it was made with: left out."""
    cells = getattr(func, "__closure__", None) or ()
    code = getattr(func, "__code__", None)
    if not cells or code is None:
        return {}, []
    state = _assigned(code)
    data: dict[str, Any] = {}
    others: list[str] = []
    for name, cell in zip(code.co_freevars, cells, strict=False):
        if name == "__class__" or name in state:
            continue
        try:
            value = cell.cell_contents
        except ValueError:  # not bound yet: nothing to read at decoration
            others.append(name)
            continue
        if is_plain(value, tuples=True):
            data[name] = value
        elif not _code(value):
            others.append(name)
    return data, others


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', repr(obj))}"


def _caller_stacklevel() -> int:
    """The stack level of the first frame outside this package (the decoration)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        ("llm_middleware", "functools", "wrapt")
    ):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


def identify(target: Callable[..., Any], name: str | None, namespace: object) -> Identity:
    """The identity of ``target`` (see the module docstring); ``name``: an explicit
    one. Warns (`CacheIdentityWarning`) when ``target`` captures values that cannot
    join its identity and neither ``name`` nor ``namespace`` is given."""
    if name is not None:  # checked by `CacheOptions`
        return Identity(name, name, _owner(target))
    data: dict[str, Any] = {}
    others: list[str] = []
    inner: Any = target
    bound: list[Any] = []
    while isinstance(inner, functools.partial):
        bound.append({"args": list(inner.args), "keywords": dict(inner.keywords)})
        inner = inner.func
    for i, part in enumerate(reversed(bound)):
        if is_plain(part, tuples=True):
            data[f"partial{i}"] = part
        else:
            others.append(f"the arguments bound by functools.partial #{i}")
    owner = _owner(inner)
    if owner is not None:
        label = _qualified(type(owner))
    elif inspect.isfunction(inner) or inspect.ismethod(inner):
        label = _qualified(inner)
        captured, uncaptured = _captured(inspect.unwrap(inner))
        data.update(captured)
        others += uncaptured
    else:
        label = _qualified(inner)
    if others and name is None and namespace is None:
        warnings.warn(
            f"{label} captures {', '.join(others)}, which cannot join its cache identity: "
            "every function made alike shares its cache entries. Give each one "
            "name='...' (an explicit cache identity) or namespace='...'.",
            CacheIdentityWarning,
            stacklevel=_caller_stacklevel(),
        )
    if not data:
        return Identity(label, label, owner)
    digest = hashlib.blake2b(canonical_json(data).encode("utf-8", "surrogatepass"), digest_size=8)
    return Identity(label, f"{label}#{digest.hexdigest()}", owner)


def _owner(target: Any) -> object:
    """The instance when ``target`` is a callable instance (not a function, method,
    class, partial or builtin), else ``None``."""
    if isinstance(
        target,
        (type, functools.partial, types.FunctionType, types.MethodType, types.BuiltinFunctionType),
    ):
        return None
    return target if callable(target) else None
