"""The chain's steps: decide **policy** and key before **tier lookup → call →
promote/store**.

Steps are plain callables over one `CallContext`; they decide (controls, intent,
policy, key) and never touch a backend. A step may raise `SkipCache` to make the
call uncached. The I/O that follows -- look up the tiers, call the function,
promote, store -- is the single flow of ``flow``.

Pure: the steps get what they need (rules, whether a namespace is required) from
the decorator, and this module imports no configuration, tiers, registry or trace.
A step whose outcome depends only on the call's arguments (and on the controls
around the call, which the memo of decisions checks itself) says so with a true
``remembers`` attribute: when every step does, ``memo`` may keep the decision.
A step without the attribute is never remembered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .control import current_mode, current_policy
from .errors import SkipCache
from .keys import KeyMemo, UnkeyableError
from .policy import POLICY_TTL, CachePolicy, Classifier, IntentRules, classify_with

__all__ = [
    "DEFAULT_TIERS_FOR",
    "DEGRADED",
    "BuildKey",
    "CallContext",
    "ChoosePolicy",
    "ReadIntent",
    "Step",
    "check_controls",
    "remembers",
    "run_steps",
]

DEGRADED = frozenset({"unkeyable_argument", "namespace_missing", "namespace_error", "step_error"})
"""Bypass reasons that mean the cache could not do its job: logged as warnings."""

DEFAULT_TIERS_FOR: Mapping[CachePolicy, int | None] = {
    CachePolicy.SHORT: 1,
    CachePolicy.MEDIUM: 2,
    CachePolicy.LONG: None,  # all tiers
}


class CallContext:
    """Everything the steps know about one call. Steps read and set its fields.

    ``arguments`` are the bound arguments (defaults applied, ``self``/``cls``
    left out); ``key_extra`` is data a user step adds to the key. ``trace`` is the
    call's `llm_middleware.trace.Trace`, set by the decorator once the steps have run
    (``None`` while they run).
    """

    __slots__ = (
        "arguments",
        "depth",
        "fn",
        "instance",
        "key",
        "key_extra",
        "namespace",
        "policy",
        "prompt",
        "read",
        "rule",
        "skip",
        "skip_error",
        "trace",
        "ttl",
        "write",
    )

    def __init__(self, fn: str, arguments: dict[str, Any], instance: object = None) -> None:
        self.fn = fn
        self.arguments = arguments
        self.instance = instance
        self.prompt = ""
        self.policy: CachePolicy | None = None
        self.ttl = 0
        self.rule = ""
        self.depth: int | None = None
        self.namespace: str | None = None
        self.key: str | None = None
        self.key_extra: dict[str, Any] = {}
        self.read = True
        self.write = True
        self.skip: str | None = None
        self.skip_error: str | None = None
        self.trace: Any = None


Step = Callable[[CallContext], None]
"""A chain step: reads and sets fields of the context; may raise `SkipCache`."""


def remembers(step: Step) -> bool:
    """Whether ``step`` declares that its outcome depends only on the call's arguments
    (a true ``remembers`` attribute)."""
    return getattr(step, "remembers", False) is True


def check_controls(ctx: CallContext) -> None:
    """Apply ``bypass()`` / ``refresh()`` blocks around the call."""
    mode = current_mode()
    if mode == "bypass":
        raise SkipCache("bypass")
    if mode == "refresh":
        ctx.read = False


check_controls.remembers = True  # type: ignore[attr-defined]  # decisions kept only outside blocks


class ReadIntent:
    """Set ``ctx.prompt`` to the intent text read from the arguments.

    ``remembers``: whether ``extract`` reads the arguments only (the built-in
    readers do; a user's callable might read anything)."""

    __slots__ = ("extract", "remembers")

    def __init__(
        self, extract: Callable[[Mapping[str, Any]], str], *, remembers: bool = False
    ) -> None:
        self.extract = extract
        self.remembers = remembers

    def __call__(self, ctx: CallContext) -> None:
        ctx.prompt = self.extract(ctx.arguments)


class ChoosePolicy:
    """Classify the prompt (unless ``use_policy`` decides) and set policy, ttl, depth."""

    __slots__ = ("classifier", "tiers_for")

    def __init__(
        self,
        classifier: IntentRules | Classifier,
        tiers_for: Mapping[CachePolicy, int | None] = DEFAULT_TIERS_FOR,
    ) -> None:
        self.classifier = classifier
        self.tiers_for = tiers_for

    @property
    def remembers(self) -> bool:
        """`IntentRules` decide alike for alike prompts; a custom classifier may not."""
        return type(self.classifier) is IntentRules

    def __call__(self, ctx: CallContext) -> None:
        forced = current_policy()
        if forced is not None:
            ttl = (
                self.classifier.ttl(forced)
                if isinstance(self.classifier, IntentRules)
                else POLICY_TTL[forced]
            )
            ctx.policy, ctx.ttl, ctx.rule = forced, ttl, "use_policy"
        else:
            ctx.policy, ctx.ttl, ctx.rule = classify_with(self.classifier, ctx.prompt)
        if ctx.policy is CachePolicy.NEVER or ctx.ttl <= 0:
            raise SkipCache("policy_never")
        ctx.depth = self.tiers_for.get(ctx.policy)


class BuildKey:
    """Set ``ctx.key`` from the function, its keyed arguments and the namespace.

    With ``namespace_required`` (a bool, or a callable asked per call, as the
    decorator passes the process setting), a call whose namespace resolves to
    nothing runs uncached instead of sharing a global entry (fail closed).
    Remembered unless the namespace is a callable of the arguments.
    """

    __slots__ = ("_memo", "identity", "ignore", "namespace", "namespace_required", "remembers")

    def __init__(
        self,
        ignore: Iterable[str] = (),
        namespace: str | Callable[[Mapping[str, Any]], object] | None = None,
        namespace_required: bool | Callable[[], bool] = False,
        identity: str | None = None,
    ) -> None:
        self.identity = identity  # the function as its keys know it (default: ctx.fn)
        self.ignore = frozenset(ignore)
        self.namespace = namespace
        self.namespace_required = namespace_required
        self.remembers = not callable(namespace)
        self._memo: KeyMemo | None = None

    def __call__(self, ctx: CallContext) -> None:
        namespace: object = self.namespace
        if callable(namespace):
            try:
                namespace = namespace(ctx.arguments)
            except Exception as exc:
                raise SkipCache("namespace_error") from exc
        ctx.namespace = None if namespace is None or namespace == "" else str(namespace)
        if ctx.namespace is None:
            required = self.namespace_required
            if required is True or (callable(required) and required()):
                raise SkipCache("namespace_missing")
        keyed: dict[str, Any] = {k: v for k, v in ctx.arguments.items() if k not in self.ignore}
        hook = getattr(ctx.instance, "__cache_key__", None)
        if hook is not None and not isinstance(ctx.instance, type):
            keyed["__self__"] = hook()
        if ctx.key_extra:
            keyed["__extra__"] = ctx.key_extra
        memo, fn = self._memo, self.identity or ctx.fn
        if memo is None or memo.fn != fn:
            memo = self._memo = KeyMemo(fn)
        try:
            ctx.key = memo.key(keyed, ctx.namespace)
        except UnkeyableError as exc:
            raise SkipCache("unkeyable_argument") from exc


def run_steps(steps: Sequence[Step], ctx: CallContext) -> None:
    """Run ``steps`` in order; a `SkipCache` marks the call uncached, and so does any
    other exception of a step (a classifier, a prompt reader, a ``__cache_key__``
    hook, a user step): the cache's trouble never becomes the caller's."""
    try:
        for step in steps:
            step(ctx)
    except SkipCache as skip:
        ctx.skip = skip.reason
        ctx.read = ctx.write = False
    except Exception as exc:
        ctx.skip = "step_error"
        ctx.skip_error = f"{type(exc).__name__}: {exc}"
        ctx.read = ctx.write = False
