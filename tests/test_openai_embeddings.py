"""`wrap_openai` caches ``embeddings.create``, with the real openai client and a local server."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

import pytest

openai = pytest.importorskip("openai")

from openai.types import CreateEmbeddingResponse  # noqa: E402
from structlog.testing import capture_logs  # noqa: E402

from llm_middleware import CachePolicy, MultiLevelCache, bypass  # noqa: E402
from llm_middleware.openai import wrap_openai  # noqa: E402
from tests.support.fake_embeddings import vector  # noqa: E402
from tests.support.fake_openai import FakeOpenAIServer  # noqa: E402

MODEL = "text-embedding-test"


def clients(server: FakeOpenAIServer) -> tuple[Any, Any]:
    options = {"base_url": server.base_url, "api_key": "test", "max_retries": 0}
    return openai.OpenAI(**options), openai.AsyncOpenAI(**options)


def bits(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def test_repeated_request_is_answered_equal_and_bit_exact(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """A repeat is an equal CreateEmbeddingResponse, its floats identical bit for bit."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    fresh = cached.embeddings.create(model=MODEL, input=["alpha", "beta"])
    with capture_logs() as events:
        again = cached.embeddings.create(model=MODEL, input=["alpha", "beta"])
    assert openai_server.calls == 1
    assert type(again) is CreateEmbeddingResponse
    assert again == fresh
    for old, new in zip(fresh.data, again.data, strict=True):
        assert bits(new.embedding) == bits(old.embedding)
    results = [e for e in events if e["event"] == "cache.result"]
    assert [(e["outcome"], e["policy"]) for e in results] == [("hit", "long")] * 2
    assert sum(e["saved_tokens"] for e in results) == fresh.usage.total_tokens


def test_float64_vectors_round_trip_bit_exactly(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """Vectors that are not float32 (JSON floats of another server) keep every bit."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    model = "text-embedding-f64"
    fresh = cached.embeddings.create(model=model, input="gamma", encoding_format="float")
    again = cached.embeddings.create(model=model, input="gamma", encoding_format="float")
    assert openai_server.calls == 1
    assert bits(again.data[0].embedding) == bits(fresh.data[0].embedding)
    assert again.data[0].embedding == vector(model, 8, "gamma")
    assert any(struct.unpack("f", struct.pack("f", x))[0] != x for x in fresh.data[0].embedding)


def test_vectors_are_stored_as_base64_not_json_floats(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """The stored entry holds the vector as base64 float32 bytes (compact)."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    with capture_logs() as events:
        response = cached.embeddings.create(model=MODEL, input="delta", dimensions=64)
    stored = cache.backends[0].get(events[-1]["key"])
    assert stored is not None
    value = json.loads(stored)["value"]
    assert value["dtype"] == "f4"
    assert base64.b64decode(value["b64"]) == struct.pack("<64f", *response.data[0].embedding)
    assert str(response.data[0].embedding[0])[:8].encode() not in stored


def test_partial_batch_calls_the_api_once_for_the_unseen_inputs(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """Seen inputs come from the cache; one request carries only the others; order is kept."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    cached.embeddings.create(model=MODEL, input=["b", "d"])
    response = cached.embeddings.create(model=MODEL, input=["a", "b", "c", "d", "a"])
    assert openai_server.calls == 2
    assert openai_server.requests[-1]["input"] == ["a", "c"]
    assert [d.index for d in response.data] == [0, 1, 2, 3, 4]
    expected = [vector(MODEL, 8, text) for text in ["a", "b", "c", "d", "a"]]
    assert [d.embedding for d in response.data] == expected
    uncached = client.embeddings.create(model=MODEL, input=["a", "b", "c", "d", "a"])
    assert [d.embedding for d in uncached.data] == expected


def test_request_fields_and_endpoint_are_in_the_key(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """Another model, dimensions or encoding makes a new call; a token array is its own input."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    cached.embeddings.create(model=MODEL, input="x")
    cached.embeddings.create(model="other", input="x")
    cached.embeddings.create(model=MODEL, input="x", dimensions=4)
    b64 = cached.embeddings.create(model=MODEL, input="x", encoding_format="base64")
    cached.embeddings.create(model=MODEL, input=[120])
    assert openai_server.calls == 5
    again = cached.embeddings.create(model=MODEL, input="x", encoding_format="base64")
    assert again == b64 and isinstance(again.data[0].embedding, str)
    assert openai_server.calls == 5


def test_policy_is_configurable_and_controls_apply(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """``embeddings_policy`` chooses the lifetime; NEVER and ``bypass()`` call every time."""
    client, _ = clients(openai_server)
    never = wrap_openai(client, cache=cache, embeddings_policy=CachePolicy.NEVER)
    never.embeddings.create(model=MODEL, input="y")
    never.embeddings.create(model=MODEL, input="y")
    assert openai_server.calls == 2
    cached = wrap_openai(client, cache=cache)
    with bypass():
        cached.embeddings.create(model=MODEL, input="y")
        cached.embeddings.create(model=MODEL, input="y")
    assert openai_server.calls == 4


def test_namespaces_do_not_share_vectors(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(openai_server)
    wrap_openai(client, cache=cache, namespace="a").embeddings.create(model=MODEL, input="z")
    wrap_openai(client, cache=cache, namespace="b").embeddings.create(model=MODEL, input="z")
    assert openai_server.calls == 2


def test_server_error_is_raised_and_not_stored(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    openai_server.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        cached.embeddings.create(model=MODEL, input="w")
    cached.embeddings.create(model=MODEL, input="w")
    assert openai_server.calls == 2


def test_async_client_partial_batch(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    _, client = clients(openai_server)
    cached = wrap_openai(client, cache=cache)

    async def main() -> tuple[Any, Any]:
        first = await cached.embeddings.create(model=MODEL, input=["p", "q"])
        second = await cached.embeddings.create(model=MODEL, input=["q", "r"])
        return first, second

    first, second = asyncio.run(main())
    assert openai_server.calls == 2 and openai_server.requests[-1]["input"] == ["r"]
    assert second.data[0].embedding == first.data[1].embedding
