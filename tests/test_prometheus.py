"""The Prometheus collector: an app serves its metrics over HTTP, a scrape parsed by
``prometheus_client``'s own text parser shows the counts ``cache_info()`` shows."""

from __future__ import annotations

import urllib.request

import pytest

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from llm_middleware import MultiLevelCache, cache_by_intent, cache_info, use_policy  # noqa: E402
from llm_middleware import prometheus as exporter  # noqa: E402
from llm_middleware.policy import CachePolicy  # noqa: E402
from tests.support.fake_openai import FakeOpenAIServer  # noqa: E402


def _scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def _ours(
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, function: str
) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(kv for kv in labels if kv[0] != "function"): value
        for labels, value in samples.get(name, {}).items()
        if dict(labels).get("function") == function
    }


def test_an_app_serves_its_cache_metrics_over_http(cache: MultiLevelCache) -> None:
    """Hits per tier, misses and bypasses by policy, time and tokens saved: scraped over
    HTTP, as the function's own counters have them; a second scrape counts nothing twice."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return f"re: {prompt}"

    for prompt in ["Explain a", "Explain a", "Explain a", "Write b", "Write b", "today?"]:
        chat(prompt)
    with use_policy(CachePolicy.NEVER):
        chat("Explain a")

    registry = prometheus_client.CollectorRegistry()
    server, thread = exporter.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        assert exporter.register(registry) is exporter.register(registry)  # registered once
        name = f"{chat.__module__}.{chat.__qualname__}"
        samples = _scrape(server.server_port)
        calls = _ours(samples, "llm_middleware_cache_calls_total", name)
        info = cache_info(chat)
        assert calls == {
            (("outcome", "hit"), ("policy", "long"), ("tier", "L1")): 2,
            (("outcome", "hit"), ("policy", "medium"), ("tier", "L1")): 1,
            (("outcome", "miss"), ("policy", "long"), ("tier", "")): 1,
            (("outcome", "miss"), ("policy", "medium"), ("tier", "")): 1,
            (("outcome", "bypass"), ("policy", "never"), ("tier", "")): 2,
        }
        assert sum(calls.values()) == info["calls"]
        seconds = _ours(samples, "llm_middleware_cache_saved_time_seconds_total", name)
        assert sum(seconds.values()) == pytest.approx(info["saved_ms"] / 1000, abs=1e-6)
        tokens = _ours(samples, "llm_middleware_cache_saved_tokens_total", name)
        assert sum(tokens.values()) == info["saved_tokens"]
        assert set(tokens) == {
            (("policy", "long"), ("tier", "L1")),
            (("policy", "medium"), ("tier", "L1")),
        }

        chat("Write b")
        again = _ours(_scrape(server.server_port), "llm_middleware_cache_calls_total", name)
        assert sum(again.values()) == sum(calls.values()) + 1
        assert again[(("outcome", "hit"), ("policy", "medium"), ("tier", "L1"))] == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def test_embeddings_and_langchain_calls_are_scraped_too(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """`wrap_openai`'s embeddings and LangChain's `IntentCache` count their calls in the
    cache's stats(); the scrape shows the same calls, under their own function names."""
    pytest.importorskip("openai")
    pytest.importorskip("langchain_core")
    from langchain_core.outputs import Generation
    from openai import OpenAI

    from llm_middleware.langchain import IntentCache
    from llm_middleware.openai import wrap_openai

    functions = ("openai.embeddings.create", "langchain.llm_cache")
    registry = prometheus_client.CollectorRegistry()
    server, thread = exporter.start_http_server(0, addr="127.0.0.1", registry=registry)

    def scraped() -> dict[str, float]:
        samples = _scrape(server.server_port)
        return {
            function: sum(_ours(samples, "llm_middleware_cache_calls_total", function).values())
            for function in functions
        }

    try:
        before = scraped()
        client = wrap_openai(
            OpenAI(base_url=openai_server.base_url, api_key="sk-test"),
            cache=cache,
        )
        client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
        client.embeddings.create(model="text-embedding-3-small", input=["alpha", "gamma"])
        llm_cache = IntentCache(cache=cache, namespace="lc")
        assert llm_cache.lookup("Explain B-trees", "model") is None
        llm_cache.update("Explain B-trees", "model", [Generation(text="A B-tree...")])
        assert llm_cache.lookup("Explain B-trees", "model") is not None

        after = scraped()
        assert after["openai.embeddings.create"] - before["openai.embeddings.create"] == 4
        assert after["langchain.llm_cache"] - before["langchain.llm_cache"] == 2
        assert sum(after.values()) - sum(before.values()) == cache.stats()["calls"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
