"""`CachedFunction`: one decorated function's decisions and shared state, and the
sequence every call of it takes (decision, tier 1 inline, flow)."""

from __future__ import annotations

import functools
import inspect
import time
import typing
from collections.abc import Callable
from typing import Any

from . import config, listeners
from ._binding import Binder
from ._identity import identify
from ._io import Flow, run_async, run_sync
from ._snapshot import snapshot_call
from .argkey import SCALARS, argument_key
from .chain import (
    BuildKey,
    CallContext,
    ChoosePolicy,
    ReadIntent,
    Step,
    check_controls,
    remembers,
    run_steps,
)
from .codec import Codec, Envelope
from .contract import NO_VALUE
from .control import no_control_block
from .errors import DecorationError
from .flow import FlowOptions, ResultAdapter, cached_call
from .hits import inline_tier, read_first, report_hit, settle
from .intent_text import intent_reader
from .memo import DecisionMemo
from .options import CacheOptions
from .revalidate import Revalidations
from .semantic.level import SemanticHook
from .semantic.match import SemanticMatch
from .singleflight import AsyncFlights, Flights
from .stats import CacheStats, Recorders
from .tiers import MultiLevelCache
from .trace import Trace, current_output

__all__ = ["CachedFunction"]


def _return_type(func: Callable[..., Any]) -> object:
    while isinstance(func, functools.partial):
        func = func.func
    if not (inspect.isfunction(func) or inspect.ismethod(func)) and callable(func):
        func = type(func).__call__  # a callable instance: its __call__'s annotation
    try:
        return typing.get_type_hints(func).get("return")
    except Exception:  # unresolvable forward references: no model decoding
        return None


class CachedFunction:
    """What the decorator decided once, at decoration time, for one function, and the
    state its calls share (counters, in-flight calls, remembered decisions)."""

    def __init__(
        self,
        func: Callable[..., Any],
        options: CacheOptions,
        adapter: ResultAdapter | None = None,
    ) -> None:
        self.func = func
        identity = identify(func, options.name, options.namespace)
        self.name = identity.name
        self.owner = identity.owner  # a callable instance: keyed like a method's self
        self.ignore = options.ignore
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        self.binder = Binder(self.signature)
        self.method_binder = Binder(self.signature.replace(parameters=params[1:]))
        self.cache = options.cache
        self.rules = options.rules
        unknown = [n for n in options.ignore if n not in self.signature.parameters]
        if unknown:
            raise DecorationError(f"{self.name}: ignore= names unknown arguments {unknown}")
        namespace_required = options.namespace_required
        self.choose_policy = ChoosePolicy(self.rules or config.default_rules(), options.tiers_for)
        self.steps: tuple[Step, ...] = (
            check_controls,
            ReadIntent(
                intent_reader(self.name, self.signature, options.prompt_arg),
                remembers=not callable(options.prompt_arg),
            ),
            self.choose_policy,
            *options.steps,
            BuildKey(
                options.ignore,
                options.namespace,
                config.namespace_required if namespace_required is None else namespace_required,
                identity.key_name,
            ),
        )
        self.codec = Codec(_return_type(func), accepts=None if adapter is None else adapter.accepts)
        self.stats = CacheStats(self.name)
        self.flights = Flights()
        self.async_flights: AsyncFlights[Any] = AsyncFlights()
        self.flow_options = FlowOptions(
            self.codec,
            Revalidations(),
            adapter,
            options.lock,
            options.stale_ttl,
            _semantic_hook(options.semantic, self.ignore),
        )
        self._recorders: Recorders | None = None
        self.on_hit = None if adapter is None else adapter.on_hit
        # tier 1 answers inline unless an answer may be served stale: that takes the
        # flow, which starts the refresh
        self.inline = not options.stale_ttl
        self.memo = DecisionMemo() if self._arguments_decide(options.ignore) else None

    def _arguments_decide(self, ignore: tuple[str, ...]) -> bool:
        """Whether a call's decision may be remembered by its arguments: the function's
        defaults are scalars (a mutable default may change between calls) and every
        step declares it `remembers` (checked again per call: the classifier follows
        ``configure``)."""
        if callable(getattr(self.owner, "__cache_key__", None)):
            return False  # the instance's state joins every key
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
        """``(answer, None)`` for a hit answered by tier 1 read inline, else
        ``(NO_VALUE, flow)``: the cached call's flow, or ``None`` when the arguments do
        not fit (the function is then called as is and raises its own TypeError).

        One sequence for every call: the decision (remembered, or made by the steps),
        tier 1 answered inline where it can be (`hits.read_first`), then the flow."""
        memo = self.memo
        arguments = None
        trace: Trace | None = None  # made once per call: its events share one call_id
        start = -1  # the tier the flow's lookup starts from; -1: tier 1 not read yet
        if memo is not None and instance is None and no_control_block():
            arguments = argument_key(args, kwargs)
            if arguments is not None:
                decision = memo.recall(arguments, config.generation())
                if decision is not None:  # these arguments were decided before
                    cache = self.cache or config.default_cache()
                    out = current_output()
                    if self.inline and inline_tier(cache, out, may_block):
                        listening = listeners.ACTIVE
                        watched = out.info or listening
                        started = time.perf_counter() if watched else 0.0
                        key = decision.key
                        found = read_first(cache, key, self.codec)
                        recorders = self._recorders
                        if recorders is None or recorders.targets[0] is not cache.recorder:
                            recorders = self.recorders(cache)
                        if type(found) is Envelope:
                            value = found.value
                            report_hit(
                                recorders,
                                Trace(self.name, key, recorders, out) if watched else None,
                                cache.tiers[0].name,
                                decision.policy,
                                started,
                                found.duration_ms,
                                found.saved_tokens,
                                value,
                                self.binder.bind(args, kwargs) if listening else None,
                            )
                            return value if self.on_hit is None else self.on_hit(value), None
                        trace = Trace(self.name, key, recorders, out)
                        start = settle(cache, key, found, trace)  # type: ignore[arg-type]
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
            if trace.key != ctx.key:  # the steps decided another key: its tier 1 is unread
                start = -1
            trace.key = ctx.key
        ctx.trace = trace
        decided = ctx.read and ctx.key is not None and ctx.policy is not None
        if decided and arguments is not None and self.choose_policy.remembers:
            assert ctx.key is not None and ctx.policy is not None
            assert memo is not None
            memo.remember(arguments, args, kwargs, ctx.key, ctx.policy.value, generation)
        inline = start < 0 and self.inline and inline_tier(cache, trace.out, may_block)
        if decided and inline:
            assert ctx.key is not None and ctx.policy is not None
            found = read_first(cache, ctx.key, self.codec)
            if type(found) is Envelope:
                value = found.value
                report_hit(trace.stats, trace, cache.tiers[0].name, ctx.policy.value, started,
                           found.duration_ms, found.saved_tokens, value=value,
                           arguments=ctx.arguments)  # fmt: skip
                return value if self.on_hit is None else self.on_hit(value), None
            start = settle(cache, ctx.key, found, trace)  # type: ignore[arg-type]
        call: Callable[[], Any]
        if ctx.key is None:  # uncached: the caller's own call, at once
            call, private = functools.partial(wrapped, *args, **kwargs), True
        else:
            live = [ctx.arguments[name] for name in self.ignore]
            owner = self.owner if instance is None else instance
            call, private = snapshot_call(wrapped, args, kwargs, live, owner)
        flow = cached_call(
            ctx, cache, call, flights, self.flow_options, started,
            private=private, start=max(start, 0),
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


def _semantic_hook(
    setting: SemanticMatch | bool | None, ignore: tuple[str, ...]
) -> SemanticHook | None:
    """How a function takes part in semantic matching: its own `SemanticMatch`
    (``True``: one with the defaults), ``False`` (never), or ``None`` (follow
    ``configure(semantic=...)``); `CacheOptions` checked the setting."""
    if setting is False:
        return None
    match = SemanticMatch() if setting is True else setting
    return SemanticHook(match, ignore, config.default_semantic)
