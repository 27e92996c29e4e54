"""`cache_by_intent`: the decorator that puts the chain in front of an LLM call."""

from __future__ import annotations

import functools
import inspect
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

import wrapt

from . import config
from ._binding import Binder
from ._identity import identify
from ._io import Flow, run_async, run_sync
from ._snapshot import snapshot_call
from .chain import (
    DEFAULT_TIERS_FOR,
    BuildKey,
    CallContext,
    ChoosePolicy,
    ReadIntent,
    Step,
    check_controls,
    run_steps,
)
from .codec import Codec
from .errors import DecorationError
from .flow import FlowOptions, ResultAdapter, Revalidations, StampedeLock, cached_call
from .keys import SCALARS
from .policy import CachePolicy, Classifier, IntentRules
from .prompt import intent_reader
from .semantic.level import SemanticHook
from .semantic.match import SemanticMatch
from .shortcut import MISSING, Decision, Shortcut
from .singleflight import AsyncFlights, Flights
from .stats import CacheStats, Recorders, StatsSnapshot
from .tiers import FirstRead, MultiLevelCache

__all__ = ["cache_by_intent"]

F = TypeVar("F", bound=Callable[..., Any])
Namespace = str | Callable[[Mapping[str, Any]], "str | None"]


def _underlying(target: Any) -> Callable[..., Any]:
    """The plain function inside a classmethod/staticmethod object."""
    return target.__func__ if isinstance(target, (classmethod, staticmethod)) else target


def _is_async(target: Any) -> bool:
    """A coroutine function, a partial of one, or an instance with an async __call__."""
    if inspect.iscoroutinefunction(target):
        return True
    if inspect.isfunction(target) or not callable(target):
        return False
    return inspect.iscoroutinefunction(type(target).__call__)


def _semantic_hook(setting: object, ignore: Iterable[str]) -> SemanticHook | None:
    """How a function takes part in semantic matching: its own `SemanticMatch`
    (``True``: one with the defaults), ``False`` (never), or ``None`` (follow
    ``configure(semantic=...)``)."""
    if setting is None or setting is False or isinstance(setting, SemanticMatch):
        return None if setting is False else SemanticHook(setting, ignore)
    if setting is True:
        return SemanticHook(SemanticMatch(), ignore)
    raise DecorationError(f"semantic= takes a SemanticMatch, True or False, not {setting!r}")


def _return_type(func: Callable[..., Any]) -> object:
    while isinstance(func, functools.partial):
        func = func.func
    if not (inspect.isfunction(func) or inspect.ismethod(func)) and callable(func):
        func = type(func).__call__  # a callable instance: its __call__'s annotation
    try:
        return typing.get_type_hints(func).get("return")
    except Exception:  # unresolvable forward references: no model decoding
        return None


class _CachedFunction:
    """What the decorator decided once, at decoration time, for one function."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        cache: MultiLevelCache | None = None,
        rules: IntentRules | Classifier | None = None,
        prompt_arg: str | Callable[[Mapping[str, Any]], str] | None = None,
        ignore: Iterable[str] = (),
        namespace: Namespace | None = None,
        tiers_for: Mapping[CachePolicy, int | None] | None = None,
        steps: Sequence[Step] = (),
        namespace_required: bool | None = None,
        lock: bool | StampedeLock = False,
        stale_ttl: float = 0.0,
        adapter: ResultAdapter | None = None,
        name: str | None = None,
        semantic: SemanticMatch | bool | None = None,
    ) -> None:
        self.func = func
        if not stale_ttl >= 0:
            raise DecorationError(f"stale_ttl must be >= 0 seconds, got {stale_ttl!r}")
        if lock is True:
            lock = StampedeLock()
        elif lock is not False and not isinstance(lock, StampedeLock):
            raise DecorationError(f"lock= takes True/False or a StampedeLock, not {lock!r}")
        identity = identify(func, name, namespace)
        self.name = identity.name
        self.owner = identity.owner  # a callable instance: keyed like a method's self
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        self.binder = Binder(self.signature)
        self.method_binder = Binder(self.signature.replace(parameters=params[1:]))
        self.cache = cache
        self.rules = rules
        ignore = self.ignore = tuple(ignore)
        if isinstance(ignore, str) or not all(isinstance(i, str) for i in ignore):
            raise DecorationError("ignore= takes a sequence of argument names")
        unknown = [n for n in ignore if n not in self.signature.parameters]
        if unknown:
            raise DecorationError(f"{self.name}: ignore= names unknown arguments {unknown}")
        self.options = FlowOptions(
            adapter, lock or None, float(stale_ttl), _semantic_hook(semantic, ignore)
        )
        for step in steps:
            if not callable(step):
                raise DecorationError(f"steps= takes callables, not {step!r}")
        merged_tiers = {**DEFAULT_TIERS_FOR, **(tiers_for or {})}
        for policy, depth in merged_tiers.items():
            if depth is not None and (not isinstance(depth, int) or depth < 1):
                raise DecorationError(f"tiers_for[{policy}] must be a positive int or None")
        self.choose_policy = ChoosePolicy(rules or config.default_rules(), merged_tiers)
        self.steps: tuple[Step, ...] = (
            check_controls,
            ReadIntent(intent_reader(self.name, self.signature, prompt_arg)),
            self.choose_policy,
            *steps,
            BuildKey(ignore, namespace, namespace_required, identity.key_name),
        )
        self.codec = Codec(_return_type(func))
        self.stats = CacheStats(self.name)
        self.flights = Flights()
        self.async_flights: AsyncFlights[Any] = AsyncFlights()
        self.revalidations = Revalidations()
        self._recorders: Recorders | None = None
        self.shortcut = self._shortcut(prompt_arg, namespace, steps, ignore, adapter)

    def _shortcut(
        self,
        prompt_arg: object,
        namespace: object,
        steps: Sequence[Step],
        ignore: tuple[str, ...],
        adapter: ResultAdapter | None,
    ) -> Shortcut:
        """The short path of hits; it remembers decisions where a call's decision
        depends only on its arguments, the configuration and the controls."""
        remembers = not (steps or callable(prompt_arg) or callable(namespace))
        if callable(getattr(self.owner, "__cache_key__", None)):
            remembers = False  # the instance's state joins every key
        if self.rules is not None and type(self.rules) is not IntentRules:
            remembers = False  # a custom classifier may decide differently each time
        for name, param in self.signature.parameters.items():
            default = param.default
            if default is not param.empty and name not in ignore and type(default) not in SCALARS:
                remembers = False  # a mutable default may change between calls
        on_hit = None if adapter is None else adapter.on_hit
        return Shortcut(self.name, self.codec, on_hit, remembers=remembers)

    def context(
        self, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> CallContext | None:
        """Bind the call's arguments and run the steps; ``None`` when the arguments do
        not fit the signature (the function then raises its own TypeError)."""
        binder = self.binder if instance is None else self.method_binder
        arguments = binder.bind(args, kwargs)
        if arguments is None:
            return None
        if self.rules is None:  # follow configure(rules=...) made after decoration
            self.choose_policy.classifier = config.default_rules()
        ctx = CallContext(self.name, arguments, self.owner if instance is None else instance)
        run_steps(self.steps, ctx)
        return ctx

    def recorders(self, cache: MultiLevelCache) -> Recorders:
        """The counters a call through ``cache`` updates (reused while it stays the same)."""
        last = self._recorders
        if last is None or last.targets[0] is not cache.recorder:
            last = self._recorders = Recorders(cache.recorder, self.stats)
        return last

    def begin(
        self,
        wrapped: Callable[..., Any],
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flights: Flights | AsyncFlights[Any],
        *,
        may_block: bool,
    ) -> tuple[Any, Flow[Any] | None]:
        """``(answer, None)`` for a hit answered by the short path, else
        ``(MISSING, flow)``: the cached call's flow, or ``None`` when the arguments
        do not fit (the function is then called as is and raises its own TypeError)."""
        shortcut = self.shortcut
        first: FirstRead | None = None
        stand_in = None
        if instance is None:
            stand_in = shortcut.stand_in(args, kwargs)
            decision = shortcut.recall(stand_in)
            if decision is not None:  # these arguments bound before: the cache may be built
                cache = self.cache or config.default_cache()
                recorders = self._recorders
                if recorders is None or recorders.targets[0] is not cache.recorder:
                    recorders = self.recorders(cache)
                answer, first = shortcut.read(
                    cache, decision, recorders, may_block=may_block, arguments=(args, kwargs)
                )
                if answer is not MISSING:
                    return answer, None
                if first is not None and first.data is None and first.error is None:
                    # absent: the flow reads again after the steps, so an answer stored
                    # meanwhile by a concurrent identical call is found, not called again
                    first = None
        # not remembered (or not answered): the steps decide, then the short path or the flow
        started = time.perf_counter()
        generation = config.generation()
        ctx = self.context(instance, args, kwargs)
        if ctx is None:
            return MISSING, None
        cache = self.cache or config.default_cache()
        recorders = self.recorders(cache)
        if instance is None and type(self.choose_policy.classifier) is IntentRules:
            shortcut.remember(stand_in, args, kwargs, ctx, generation)  # rules decide alike
        if first is None and ctx.read and ctx.key is not None and ctx.policy is not None:
            decision = Decision(ctx.key, ctx.policy.value)
            answer, first = shortcut.read(
                cache,
                decision,
                recorders,
                may_block=may_block,
                started=started,
                arguments=(args, kwargs),
            )
            if answer is not MISSING:
                return answer, None
        ctx.trace.stats = recorders
        call: Callable[[], Any]
        if ctx.key is None:  # uncached: the caller's own call, at once
            call, private = functools.partial(wrapped, *args, **kwargs), True
        else:
            live = [ctx.arguments[name] for name in self.ignore]
            owner = self.owner if instance is None else instance
            call, private = snapshot_call(wrapped, args, kwargs, live, owner)
        flow = cached_call(
            ctx, cache, self.codec, call, flights, self.revalidations, self.options, first,
            started, private=private,
        )  # fmt: skip
        return MISSING, flow

    def call(
        self,
        wrapped: Callable[..., Any],
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        answer, flow = self.begin(wrapped, instance, args, kwargs, self.flights, may_block=True)
        if answer is not MISSING:
            return answer
        return wrapped(*args, **kwargs) if flow is None else run_sync(flow)

    async def acall(
        self,
        wrapped: Callable[..., Any],
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        answer, flow = self.begin(
            wrapped, instance, args, kwargs, self.async_flights, may_block=False
        )
        if answer is not MISSING:
            return answer
        return await (wrapped(*args, **kwargs) if flow is None else run_async(flow))


@overload
def cache_by_intent(func: F, /) -> F: ...


@overload
def cache_by_intent(
    func: None = None,
    /,
    *,
    cache: MultiLevelCache | None = None,
    rules: IntentRules | Classifier | None = None,
    prompt_arg: str | Callable[[Mapping[str, Any]], str] | None = None,
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


def cache_by_intent(
    func: Any = None,
    /,
    *,
    cache: MultiLevelCache | None = None,
    rules: IntentRules | Classifier | None = None,
    prompt_arg: str | Callable[[Mapping[str, Any]], str] | None = None,
    ignore: Iterable[str] = (),
    namespace: Namespace | None = None,
    tiers_for: Mapping[CachePolicy, int | None] | None = None,
    steps: Sequence[Step] = (),
    namespace_required: bool | None = None,
    lock: bool | StampedeLock = False,
    stale_ttl: float = 0.0,
    name: str | None = None,
    semantic: SemanticMatch | bool | None = None,
) -> Any:
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
    if func is None:
        return functools.partial(
            cache_by_intent,
            cache=cache,
            rules=rules,
            prompt_arg=prompt_arg,
            ignore=ignore,
            namespace=namespace,
            tiers_for=tiers_for,
            steps=steps,
            namespace_required=namespace_required,
            lock=lock,
            stale_ttl=stale_ttl,
            name=name,
            semantic=semantic,
        )
    return decorate(
        func,
        cache=cache,
        rules=rules,
        prompt_arg=prompt_arg,
        ignore=ignore,
        namespace=namespace,
        tiers_for=tiers_for,
        steps=steps,
        namespace_required=namespace_required,
        lock=lock,
        stale_ttl=stale_ttl,
        name=name,
        semantic=semantic,
    )


def decorate(func: Any, *, adapter: ResultAdapter | None = None, **options: Any) -> Any:
    """`cache_by_intent` for integrations: the same wrapper, plus a result ``adapter``."""
    target = _underlying(func)
    if not callable(target):
        raise DecorationError(f"cache_by_intent decorates functions, not {func!r}")
    cached = _CachedFunction(target, adapter=adapter, **options)
    # the wrapper is the bound method itself: no extra frame per call
    handler = cached.acall if _is_async(target) else cached.call
    wrapper = wrapt.FunctionWrapper(func, handler)
    wrapper.cache_info = cached.stats.snapshot  # type: ignore[attr-defined]
    return wrapper


def cache_info(func: Callable[..., Any]) -> StatsSnapshot:
    """The counters of one decorated function (also ``func.cache_info()``)."""
    info: Callable[[], StatsSnapshot] = func.cache_info  # type: ignore[attr-defined]
    return info()
