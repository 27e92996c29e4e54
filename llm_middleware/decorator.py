"""`cache_by_intent`: the decorator that puts the chain in front of an LLM call."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

import wrapt

from .cached import CachedFunction
from .chain import Step
from .errors import DecorationError
from .flow import ResultAdapter
from .options import CacheOptions, Namespace, PromptArg
from .policy import CachePolicy, Classifier, IntentRules
from .semantic.match import SemanticMatch
from .stampede import StampedeLock
from .stats import StatsSnapshot
from .tiers import MultiLevelCache

__all__ = ["CacheOptions", "cache_by_intent", "cache_info", "decorate"]

F = TypeVar("F", bound=Callable[..., Any])


def _underlying(target: Any) -> Callable[..., Any]:
    """The plain function inside a classmethod/staticmethod object."""
    return target.__func__ if isinstance(target, (classmethod, staticmethod)) else target


@overload
def cache_by_intent(func: F, /) -> F: ...


@overload
def cache_by_intent(
    func: None = None,
    /,
    *,
    cache: MultiLevelCache | None = None,
    rules: IntentRules | Classifier | None = None,
    prompt_arg: PromptArg | None = None,
    ignore: Iterable[str] = (),
    namespace: Namespace | None = None,
    tiers_for: Mapping[CachePolicy, int | None] | None = None,
    steps: Sequence[Step] = (),
    namespace_required: bool | None = None,
    lock: bool | StampedeLock = False,
    stale_ttl: float = 0.0,
    name: str | None = None,
    semantic: SemanticMatch | bool | None = None,
) -> Callable[[F], F]: ...


def cache_by_intent(func: Any = None, /, **options: Any) -> Any:
    """Cache a function that calls an LLM, with a lifetime chosen by the prompt's intent.

    Use bare (``@cache_by_intent``: the process default cache and rules) or with
    options:

    - ``cache``: the `MultiLevelCache` to use (default: `configure` / environment).
    - ``rules``: `IntentRules` or any ``Callable[[str], CachePolicy]``.
    - ``prompt_arg``: the argument holding the intent text (a string, chat messages
      -- their last user message -- or a request body with ``messages``), or a
      callable of the bound arguments (default: ``prompt``, else ``messages``).
    - ``ignore``: argument names left out of the key (clients, timeouts).
    - ``namespace``: a string, or a callable of the bound arguments; entries of one
      namespace are never served to another.
    - ``namespace_required``: a call whose namespace resolves to nothing runs
      uncached (with a warning event) instead of sharing a global entry
      (default: ``configure(namespace_required=...)``, else False).
    - ``lock``: ``True`` or a `StampedeLock`: across processes, the first to miss
      takes a short-lived lock in the shared tier and the others wait (bounded) for
      its answer instead of calling too.
    - ``stale_ttl``: a grace window in seconds after an answer's lifetime in which a
      hit returns the stale answer at once while one background call refreshes it.
    - ``semantic``: a `SemanticMatch` lets a prompt of the same meaning share a
      stored answer, within a stated error rate (default: ``configure(semantic=...)``;
      ``False``: only identical calls share answers).
    - ``tiers_for``: policy → how many tiers (from the top) store its answers
      (default SHORT → 1, MEDIUM → 2, LONG → all).
    - ``name``: an explicit cache identity for the function (default: its module
      and qualified name, plus the plain JSON data a closure captures, read once
      here); functions of one ``name`` share entries. A closure that captures
      other values (a client) is warned about (`CacheIdentityWarning`) unless it has
      a ``name`` or a ``namespace``. A ``functools.partial`` is its function plus its
      bound arguments; a callable instance is its class plus ``__cache_key__()``.
    - ``steps``: extra chain steps, run after the policy is chosen and before the
      key is built; each is ``step(ctx: CallContext) -> None`` and may raise
      `SkipCache`.

    Methods: ``self``/``cls`` are not part of the key; an instance whose answers
    depend on its state defines ``__cache_key__(self)`` returning JSON data.
    """
    settings = CacheOptions.of(**options)  # misuse raises here, before any function
    if func is None:
        return functools.partial(decorate, options=settings)
    return decorate(func, options=settings)


def decorate(
    func: Any,
    *,
    options: CacheOptions | None = None,
    adapter: ResultAdapter | None = None,
    **keywords: Any,
) -> Any:
    """`cache_by_intent` for integrations: the same wrapper, plus a result ``adapter``.
    Options come as a `CacheOptions`, or as the decorator's keywords."""
    if options is None:
        options = CacheOptions.of(**keywords)
    elif keywords:
        options = CacheOptions.of(**{**_as_keywords(options), **keywords})
    target = _underlying(func)
    if not callable(target):
        raise DecorationError(f"cache_by_intent decorates functions, not {func!r}")
    cached = CachedFunction(target, options, adapter)
    # the wrapper is the bound method itself: no extra frame per call
    handler = cached.acall if _is_async(target) else cached.call
    wrapper = wrapt.FunctionWrapper(func, handler)
    wrapper.cache_info = cached.stats.snapshot  # type: ignore[attr-defined]
    return wrapper


def _is_async(target: Any) -> bool:
    """A coroutine function, a partial of one, or an instance with an async __call__."""
    if inspect.iscoroutinefunction(target):
        return True
    if inspect.isfunction(target) or not callable(target):
        return False
    return inspect.iscoroutinefunction(type(target).__call__)


def _as_keywords(options: CacheOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


def cache_info(func: Callable[..., Any]) -> StatsSnapshot:
    """The counters of one decorated function (also ``func.cache_info()``)."""
    info: Callable[[], StatsSnapshot] = func.cache_info  # type: ignore[attr-defined]
    return info()
