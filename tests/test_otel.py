"""OpenTelemetry: spans and metrics of cached calls reach the SDK's in-memory span
exporter and metric reader; without a provider nothing listens.

The providers are set once per process (the API allows no other); the exporter is
stopped after this module, and later calls' spans go nowhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from llm_middleware import MultiLevelCache, cache_by_intent, cache_info
from tests.support.fake_openai import FakeOpenAIServer

Telemetry = tuple[InMemorySpanExporter, InMemoryMetricReader]


@pytest.fixture(scope="module")
def telemetry() -> Iterator[Telemetry]:
    """The SDK's in-memory exporter and reader on the global providers. A library that
    another test imported (langsmith, in its OpenTelemetry mode) may have set a tracer
    provider already: the exporter is then added to it."""
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    tracer_provider = trace.get_tracer_provider()
    if not isinstance(tracer_provider, TracerProvider):
        assert isinstance(tracer_provider, trace.ProxyTracerProvider)
        tracer_provider = TracerProvider()
        trace.set_tracer_provider(tracer_provider)
    tracer_provider.add_span_processor(processor)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(meter_provider)
    assert metrics.get_meter_provider() is meter_provider, "a meter provider was set before"
    yield exporter, reader
    exporter.shutdown()  # later spans are dropped quietly (a stopped processor would warn)
    exporter.clear()


def _points(reader: InMemoryMetricReader, name: str, function: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        if point.attributes.get("function") == function
    ]


def test_each_call_is_a_child_span_with_the_documented_attributes(
    telemetry: Telemetry, cache: MultiLevelCache
) -> None:
    """A miss, a hit and a bypass under an application span: three child spans named
    after the function, with outcome, tier, policy, time saved and a namespace digest
    that does not show the namespace."""
    exporter, _ = telemetry

    @cache_by_intent(cache=cache, namespace="tenant-7")
    def chat(prompt: str) -> str:
        return f"re: {prompt}"

    name = f"{chat.__module__}.{chat.__qualname__}"
    with trace.get_tracer("app").start_as_current_span("request") as parent:
        chat("Explain the CAP theorem")
        chat("Explain the CAP theorem")
        chat("What is the weather today?")
    spans = [s for s in exporter.get_finished_spans() if s.name == f"cache_by_intent {name}"]
    assert len(spans) == 3
    context = parent.get_span_context()
    for span in spans:
        assert span.parent is not None and span.parent.span_id == context.span_id
        assert span.context.trace_id == context.trace_id
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= span.end_time
    miss, hit, bypass = (dict(span.attributes or {}) for span in spans)
    assert miss["llm_middleware.cache.outcome"] == "miss"
    assert miss["llm_middleware.cache.policy"] == "long"
    assert "llm_middleware.cache.tier" not in miss
    assert hit["llm_middleware.cache.outcome"] == "hit"
    assert hit["llm_middleware.cache.tier"] == "L1"
    assert hit["llm_middleware.cache.saved_ms"] == pytest.approx(cache_info(chat)["saved_ms"])
    assert (
        hit["llm_middleware.cache.namespace_digest"]
        == miss["llm_middleware.cache.namespace_digest"]
    )
    assert bypass["llm_middleware.cache.outcome"] == "bypass"
    assert bypass["llm_middleware.cache.policy"] == "never"
    everything = json.dumps([dict(span.attributes or {}) for span in spans])
    assert "tenant-7" not in everything and "CAP" not in everything


def test_metrics_count_calls_time_and_savings(telemetry: Telemetry, cache: MultiLevelCache) -> None:
    """Calls by outcome, tier and policy; a duration per call; time and tokens saved."""
    _, reader = telemetry

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return f"re: {prompt}"

    name = f"{chat.__module__}.{chat.__qualname__}"
    for prompt in ["Explain a", "Explain a", "Explain a", "Write b", "today?"]:
        chat(prompt)
    calls = {
        (p.attributes["outcome"], p.attributes.get("tier"), p.attributes.get("policy")): p.value
        for p in _points(reader, "llm_middleware.cache.calls", name)
    }
    assert calls == {
        ("miss", None, "long"): 1,
        ("hit", "L1", "long"): 2,
        ("miss", None, "medium"): 1,
        ("bypass", None, "never"): 1,
    }
    (durations,) = [sum(p.count for p in _points(reader, "llm_middleware.cache.duration", name))]
    assert durations == 5
    saved = sum(p.value for p in _points(reader, "llm_middleware.cache.saved_time", name))
    assert saved == pytest.approx(cache_info(chat)["saved_ms"] / 1000)
    tokens = _points(reader, "llm_middleware.cache.saved_tokens", name)
    assert sum(p.value for p in tokens) == cache_info(chat)["saved_tokens"]


def test_openai_calls_carry_the_genai_attributes(
    telemetry: Telemetry, cache: MultiLevelCache, openai_server: FakeOpenAIServer
) -> None:
    """Through ``wrap_openai``: the requested model, the provider and the token usage,
    on the miss and on the hit alike."""
    openai = pytest.importorskip("openai")
    from llm_middleware.openai import wrap_openai

    exporter, _ = telemetry
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)
    cached = wrap_openai(client, cache=cache)
    request = {"model": "gpt-test", "messages": [{"role": "user", "content": "Explain DNS"}]}
    first = cached.chat.completions.create(**request)
    cached.chat.completions.create(**request)
    spans = [
        dict(s.attributes or {})
        for s in exporter.get_finished_spans()
        if s.name == "cache_by_intent openai.chat.completions.create"
    ][-2:]
    assert [s["llm_middleware.cache.outcome"] for s in spans] == ["miss", "hit"]
    for attributes in spans:
        assert attributes["gen_ai.request.model"] == "gpt-test"
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.usage.input_tokens"] == first.usage.prompt_tokens
        assert attributes["gen_ai.usage.output_tokens"] == first.usage.completion_tokens


NO_PROVIDER = textwrap.dedent(
    """
    import opentelemetry.trace, opentelemetry.metrics  # the API, but no provider set
    from llm_middleware import MultiLevelCache, cache_by_intent, listeners
    from llm_middleware.backends.memory import MemoryBackend

    @cache_by_intent(cache=MultiLevelCache([MemoryBackend()]))
    def chat(prompt):
        return "re: " + prompt

    for prompt in ["Explain a", "Explain a", "today?"]:
        chat(prompt)
    print(len(listeners.ACTIVE))
    """
)


def test_without_a_provider_nothing_listens() -> None:
    """With the API imported but no provider set (a fresh process), no listener is
    armed: a call pays only the check of an empty list."""
    done = subprocess.run(
        [sys.executable, "-c", NO_PROVIDER],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "0"


def test_operations_page_lists_every_attribute_metric_and_family() -> None:
    """Every span attribute and metric the OpenTelemetry listener can write, and every
    Prometheus family, is named in docs/operations.md (whose tables say what each means)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "operations.md").read_text()
    names: set[str] = set()
    for module in ("otel.py", "prometheus.py"):
        tree = ast.parse((root / "llm_middleware" / module).read_text())
        names |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(("llm_middleware.cache.", "llm_middleware_cache_", "gen_ai."))
        }
    assert len(names) >= 16
    assert sorted(name for name in names if f"`{name}`" not in page) == []
