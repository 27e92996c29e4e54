"""Backends by name, found through the entry-point group ``llm_middleware.backends``.

The built-in backends register there exactly like a third-party plugin; the core
never imports them by name. Entry points are listed lazily and loaded on first
use; errors name the entry point and chain the cause.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .contract import Backend
from .errors import BackendLoadError, ConfigurationError

__all__ = ["GROUP", "backend_class", "backend_from_url", "load_backend", "registered_backends"]

GROUP = "llm_middleware.backends"

_entry_points: dict[str, EntryPoint] | None = None


def registered_backends(*, refresh: bool = False) -> dict[str, EntryPoint]:
    """The backend entry points by name (``refresh`` re-reads installed packages)."""
    global _entry_points
    if _entry_points is None or refresh:
        importlib.invalidate_caches()
        _entry_points = {ep.name: ep for ep in entry_points(group=GROUP)}
    return _entry_points


def backend_class(name: str) -> type[Any]:
    """The class registered as ``name``; `ConfigurationError` lists the known names."""
    found = registered_backends().get(name) or registered_backends(refresh=True).get(name)
    if found is None:
        known = ", ".join(sorted(registered_backends())) or "none"
        raise ConfigurationError(f"unknown cache backend {name!r}; registered backends: {known}")
    try:
        cls = found.load()
    except Exception as exc:
        raise BackendLoadError(
            f"backend entry point {name!r} ({found.value}) failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not callable(cls):
        raise BackendLoadError(f"backend entry point {name!r} ({found.value}) is not a class")
    return cls  # type: ignore[no-any-return]


def _options_of(factory: Callable[..., Any]) -> dict[str, Any]:
    """Keyword options a factory takes, with their annotated types (``Any`` if none)."""
    signature = inspect.signature(factory)
    try:
        target = getattr(factory, "__init__", factory) if isinstance(factory, type) else factory
        hints = typing.get_type_hints(target)
    except Exception:
        hints = {}
    return {
        p.name: hints.get(p.name, Any)
        for p in signature.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "cls")
    }


def _check_options(name: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    valid = _options_of(factory)
    accepts_any = any(
        p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values()
    )
    unknown = sorted(set(options) - set(valid))
    if unknown and not accepts_any:
        raise ConfigurationError(
            f"backend {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(sorted(valid)) or 'none'}"
        )


def load_backend(name: str, **options: Any) -> Backend:
    """An instance of the backend registered as ``name``, built with ``options``."""
    cls = backend_class(name)
    _check_options(name, cls, options)
    try:
        return cls(**options)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"backend {name!r}: {exc}") from exc


def _convert(text: str, annotation: Any, option: str) -> Any:
    """A query-string value converted to the option's annotated type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        choices = [a for a in typing.get_args(annotation) if a is not type(None)]
        if text.lower() in ("none", "null") and len(choices) < len(typing.get_args(annotation)):
            return None
        for choice in choices:
            try:
                return _convert(text, choice, option)
            except ValueError:
                continue
        raise ValueError(f"option {option}={text!r} fits none of {annotation}")
    if annotation is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"option {option}={text!r} is not a boolean")
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            raise ValueError(f"option {option}={text!r} is not a {annotation.__name__}") from None
    if annotation is str or annotation is Any:
        return text
    if origin is not None and issubclass(origin, (list, tuple, typing.Sequence)):
        return [part for part in text.split(",") if part]
    return text


def backend_from_url(url: str) -> Backend:
    """A backend from ``scheme://location?option=value``; the scheme is the backend
    name, the location goes to the class's ``from_url`` (where it has one), and the
    options are converted to the constructor's annotated types."""
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        raise ConfigurationError(f"not a backend URL: {url!r} (expected scheme://...)")
    name = parts.scheme
    cls = backend_class(name)
    types_ = _options_of(cls)
    options: dict[str, Any] = {}
    for option, text in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if option in options:
            raise ConfigurationError(f"option {option!r} given twice in {url!r}")
        options[option] = text
    _check_options(name, cls, options)
    try:
        options = {k: _convert(v, types_.get(k, Any), k) for k, v in options.items()}
    except ValueError as exc:
        raise ConfigurationError(f"{url!r}: {exc}") from exc
    location = parts.netloc + parts.path
    from_url = getattr(cls, "from_url", None)
    try:
        if from_url is not None:
            return from_url(location, **options)  # type: ignore[no-any-return]
        if location:
            raise ConfigurationError(f"backend {name!r} takes no location, only options: {url!r}")
        return cls(**options)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"backend {name!r} from {url!r}: {exc}") from exc
