"""OpenTelemetry spans and metrics for cached calls (extra ``otel``: the API only; the
application owns the SDK, its providers and exporters).

Once the application has set a tracer or meter provider, each cached call that ends
with an answer is recorded as a span ``cache_by_intent {function}``, a child of the
span current at the call, from the call's start to its end, and counted in the
metrics below. Until then -- or without ``opentelemetry-api`` -- nothing is done and a
call pays nothing (see ``listeners``). Attribute values never include the raw
namespace or prompt.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace

from .listeners import CallEnd, Listener

__all__ = ["configured", "listener"]

SCOPE = "llm_middleware"


def configured() -> bool:
    """Whether the application has set a tracer or a meter provider (the API's own
    stand-ins until then are proxies)."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return True
    return not type(metrics.get_meter_provider()).__name__.startswith("_Proxy")


def namespace_digest(key: str) -> str:
    """A digest of a key's namespace part (``llmmw3:<namespace>:<digest>``): the same
    namespace always gives the same digest, which does not show the namespace."""
    namespace = key.split(":", 2)[1] if key.count(":") >= 2 else ""
    return hashlib.blake2b(namespace.encode(), digest_size=8).hexdigest()


_USAGE_NAMES = (
    ("gen_ai.usage.input_tokens", ("input_tokens", "prompt_tokens")),
    ("gen_ai.usage.output_tokens", ("output_tokens", "completion_tokens")),
)


def genai_attributes(value: Any, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """The GenAI semantic-convention attributes a request and its answer have: the
    requested model (a ``model`` argument, or the ``model`` of a request dict argument,
    as the client wrappers pass it), the answer's token usage (OpenAI and Anthropic
    names), and the provider, from the package the answer's type comes from."""
    found: dict[str, Any] = {}
    model = _requested_model(arguments or {})
    if model is not None:
        found["gen_ai.request.model"] = model
    if value is None:
        return found
    provider = type(value).__module__.split(".", 1)[0]
    if provider in ("openai", "anthropic"):
        found["gen_ai.provider.name"] = provider
    usage = getattr(value, "usage", None)
    if usage is not None:
        for attribute, names in _USAGE_NAMES:
            for name in names:
                count = getattr(usage, name, None)
                if type(count) is int:
                    found[attribute] = count
                    break
    return found


def _requested_model(arguments: Mapping[str, Any]) -> str | None:
    model = arguments.get("model")
    if type(model) is str:
        return model
    for value in arguments.values():
        if type(value) is dict and type(value.get("model")) is str:
            return str(value["model"])
    return None


class _Recorder:
    """The listener: one span and the metrics per call end."""

    def __init__(self) -> None:
        __version__ = _version()
        self.tracer = trace.get_tracer(SCOPE, __version__)
        meter = metrics.get_meter(SCOPE, __version__)
        self.calls = meter.create_counter(
            "llm_middleware.cache.calls",
            unit="{call}",
            description="Calls through @cache_by_intent by outcome, tier, policy, function.",
        )
        self.duration = meter.create_histogram(
            "llm_middleware.cache.duration",
            unit="s",
            description="How long cached calls took, hits and misses alike.",
        )
        self.saved_time = meter.create_counter(
            "llm_middleware.cache.saved_time",
            unit="s",
            description="Time hits saved: what the answered calls had taken.",
        )
        self.saved_tokens = meter.create_counter(
            "llm_middleware.cache.saved_tokens",
            unit="{token}",
            description="Tokens hits saved: the total tokens of the answered calls.",
        )

    def __call__(self, end: CallEnd) -> None:
        seconds = end.ended - end.started
        finished = time.time_ns()
        labels = {"outcome": end.outcome, "function": end.fn}
        if end.tier is not None:
            labels["tier"] = end.tier
        if end.policy is not None:
            labels["policy"] = end.policy
        self.calls.add(1, labels)
        self.duration.record(seconds, labels)
        if end.outcome == "hit":
            saved = {k: v for k, v in labels.items() if k != "outcome"}
            self.saved_time.add(end.saved_ms / 1000.0, saved)
            self.saved_tokens.add(end.saved_tokens, saved)
        attributes: dict[str, Any] = {
            "llm_middleware.cache.outcome": end.outcome,
            "llm_middleware.cache.saved_ms": end.saved_ms,
        }
        if end.tier is not None:
            attributes["llm_middleware.cache.tier"] = end.tier
        if end.policy is not None:
            attributes["llm_middleware.cache.policy"] = end.policy
        if end.key is not None:
            attributes["llm_middleware.cache.namespace_digest"] = namespace_digest(end.key)
        similarity = end.extra.get("similarity")
        if isinstance(similarity, float):
            attributes["llm_middleware.cache.similarity"] = similarity
        attributes.update(genai_attributes(end.value, end.arguments))
        span = self.tracer.start_span(
            f"cache_by_intent {end.fn}",
            start_time=finished - int(seconds * 1e9),
            attributes=attributes,
        )
        span.end(end_time=finished)


def listener() -> Listener:
    """The listener that records spans and metrics (made once armed)."""
    return _Recorder()


def _version() -> str:
    """The installed package's version (not ``llm_middleware.__version__``: importing
    the package's face from here would turn the layers upside down)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-middleware")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0"
