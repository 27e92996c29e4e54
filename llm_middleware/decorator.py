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
from ._io import Flow, run_async, run_sync
from .chain import (
    DEFAULT_TIERS_FOR,
    BuildKey,
    CallContext,
    ChoosePolicy,
    ReadIntent,
    Step,
    check_controls,
    remembers,
    run_steps,
)
from .codec import Codec
from .contract import NO_VALUE
from .control import neutral
from .errors import DecorationError
from .flow import FlowOptions, ResultAdapter, Revalidations, StampedeLock, cached_call
from .hits import answer_inline, inline_tier
from .memo import DecisionMemo
from .policy import CachePolicy, Classifier, IntentRules
from .prompt import intent_reader
from .singleflight import AsyncFlights, Flights
from .standin import SCALARS, stand_in
from .stats import CacheStats, Recorders, StatsSnapshot
from .tiers import MultiLevelCache
from .trace import Trace

__all__ = ["cache_by_intent"]

F = TypeVar("F", bound=Callable[..., Any])
Namespace = str | Callable[[Mapping[str, Any]], "str | None"]


def _underlying(target: Any) -> Callable[..., Any]:
    """The plain function inside a classmethod/staticmethod object."""
    return target.__func__ if isinstance(target, (classmethod, staticmethod)) else target


def _return_type(func: Callable[..., Any]) -> object:
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
    ) -> None:
        self.func = func
        if not stale_ttl >= 0:
            raise DecorationError(f"stale_ttl must be >= 0 seconds, got {stale_ttl!r}")
        if lock is True:
            lock = StampedeLock()
        elif lock is not False and not isinstance(lock, StampedeLock):
            raise DecorationError(f"lock= takes True/False or a StampedeLock, not {lock!r}")
        self.options = FlowOptions(adapter, lock or None, float(stale_ttl))
        self.name = f"{func.__module__}.{func.__qualname__}"
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        self.binder = Binder(self.signature)
        self.method_binder = Binder(self.signature.replace(parameters=params[1:]))
        self.cache = cache
        self.rules = rules
        ignore = tuple(ignore)
        if isinstance(ignore, str) or not all(isinstance(i, str) for i in ignore):
            raise DecorationError("ignore= takes a sequence of argument names")
        unknown = [n for n in ignore if n not in self.signature.parameters]
        if unknown:
            raise DecorationError(f"{self.name}: ignore= names unknown arguments {unknown}")
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
            ReadIntent(
                intent_reader(self.name, self.signature, prompt_arg),
                remembers=not callable(prompt_arg),
            ),
            self.choose_policy,
            *steps,
            BuildKey(
                ignore,
                namespace,
                config.namespace_required if namespace_required is None else namespace_required,
            ),
        )
        self.codec = Codec(_return_type(func))
        self.stats = CacheStats()
        self.flights = Flights()
        self.async_flights: AsyncFlights[Any] = AsyncFlights()
        self.revalidations = Revalidations()
        self._recorders: Recorders | None = None
        self.on_hit = None if adapter is None else adapter.on_hit
        # tier 1 answers inline unless an answer may be served stale: that takes the
        # flow, which starts the refresh
        self.inline = not stale_ttl
        self.memo = DecisionMemo() if self._arguments_decide(ignore) else None

    def _arguments_decide(self, ignore: tuple[str, ...]) -> bool:
        """Whether a call's decision may be remembered by its arguments: the function's
        defaults are scalars (a mutable default may change between calls) and every
        step declares it `remembers` (checked again per call: the classifier follows
        ``configure``)."""
        for name, param in self.signature.parameters.items():
            default = param.default
            if default is not param.empty and name not in ignore and type(default) not in SCALARS:
                return False
        return all(remembers(step) for step in self.steps if step is not self.choose_policy)

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
        ctx = CallContext(self.name, arguments, instance)
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
        """``(answer, None)`` for a hit answered inline by tier 1, else
        ``(NO_VALUE, flow)``: the cached call's flow, or ``None`` when the arguments do
        not fit (the function is then called as is and raises its own TypeError).

        One sequence for every call: the decision (remembered, or made by the steps),
        tier 1 answered inline where it can be (`answer_inline`), then the flow."""
        memo = self.memo
        arguments = None
        trace: Trace | None = None  # made once per call: its events share one call_id
        start = -1  # the tier the flow's lookup starts from; -1: tier 1 not read yet
        if memo is not None and instance is None and neutral():
            arguments = stand_in(args, kwargs)
            if arguments is not None:
                decision = memo.recall(arguments, config.generation())
                if decision is not None:  # these arguments were decided before
                    cache = self.cache or config.default_cache()
                    trace = Trace(self.name, decision.key, self.recorders(cache))
                    if self.inline and inline_tier(cache, trace, may_block=may_block):
                        started = time.perf_counter() if trace.out.info else 0.0
                        answer, start = answer_inline(
                            cache, decision.key, decision.policy, self.codec, trace, started
                        )
                        if answer is not NO_VALUE:
                            return answer if self.on_hit is None else self.on_hit(answer), None
        # not remembered (or no answer in tier 1): the steps decide, then tier 1 or the flow
        started = time.perf_counter()
        generation = config.generation()
        ctx = self.context(instance, args, kwargs)
        if ctx is None:
            return NO_VALUE, None
        cache = self.cache or config.default_cache()
        if trace is None:
            trace = Trace(self.name, ctx.key, self.recorders(cache))
        else:
            trace.key = ctx.key
        ctx.trace = trace
        decided = ctx.read and ctx.key is not None and ctx.policy is not None
        if decided and arguments is not None and self.choose_policy.remembers:
            assert ctx.key is not None and ctx.policy is not None
            assert memo is not None
            memo.remember(arguments, args, kwargs, ctx.key, ctx.policy.value, generation)
        inline = start < 0 and self.inline and inline_tier(cache, trace, may_block=may_block)
        if decided and inline:
            assert ctx.key is not None and ctx.policy is not None
            answer, start = answer_inline(
                cache, ctx.key, ctx.policy.value, self.codec, trace, started
            )
            if answer is not NO_VALUE:
                return answer if self.on_hit is None else self.on_hit(answer), None
        call = functools.partial(wrapped, *args, **kwargs)
        flow = cached_call(
            ctx, cache, self.codec, call, flights, self.revalidations, self.options, started,
            max(start, 0),
        )  # fmt: skip
        return NO_VALUE, flow

    def call(
        self,
        wrapped: Callable[..., Any],
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        answer, flow = self.begin(wrapped, instance, args, kwargs, self.flights, may_block=True)
        if answer is not NO_VALUE:
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
        if answer is not NO_VALUE:
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
    - ``tiers_for``: policy → how many tiers (from the top) store its answers
      (default SHORT → 1, MEDIUM → 2, LONG → all).
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
    )


def decorate(func: Any, *, adapter: ResultAdapter | None = None, **options: Any) -> Any:
    """`cache_by_intent` for integrations: the same wrapper, plus a result ``adapter``."""
    target = _underlying(func)
    if not callable(target):
        raise DecorationError(f"cache_by_intent decorates functions, not {func!r}")
    cached = _CachedFunction(target, adapter=adapter, **options)
    # the wrapper is the bound method itself: no extra frame per call
    handler = cached.acall if inspect.iscoroutinefunction(target) else cached.call
    wrapper = wrapt.FunctionWrapper(func, handler)
    wrapper.cache_info = cached.stats.snapshot  # type: ignore[attr-defined]
    return wrapper


def cache_info(func: Callable[..., Any]) -> StatsSnapshot:
    """The counters of one decorated function (also ``func.cache_info()``)."""
    info: Callable[[], StatsSnapshot] = func.cache_info  # type: ignore[attr-defined]
    return info()
