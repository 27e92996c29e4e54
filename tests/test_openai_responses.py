"""`wrap_openai` caches ``responses.create`` (OpenAI's Responses API), sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

openai = pytest.importorskip("openai")

from openai.types.responses import Response  # noqa: E402
from structlog.testing import capture_logs  # noqa: E402

from llm_middleware import MultiLevelCache  # noqa: E402
from llm_middleware.openai import wrap_openai  # noqa: E402
from tests.support.fake_openai import FakeOpenAIServer  # noqa: E402


def clients(server: FakeOpenAIServer) -> tuple[Any, Any]:
    options = {"base_url": server.base_url, "api_key": "test", "max_retries": 0}
    return openai.OpenAI(**options), openai.AsyncOpenAI(**options)


def user_items(*texts: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "input_text", "text": text}]} for text in texts]


def test_repeated_response_is_type_exact_and_counts_saved_tokens(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    fresh = cached.responses.create(model="m", input="Explain the CAP theorem")
    with capture_logs() as events:
        again = cached.responses.create(model="m", input="Explain the CAP theorem")
    assert openai_server.calls == 1
    assert type(again) is Response and again.model_dump() == fresh.model_dump()
    assert again.output_text == fresh.output_text == "answer #1 to: Explain the CAP theorem"
    result = events[-1]
    assert (result["outcome"], result["fn"]) == ("hit", "openai.responses.create")
    assert result["saved_tokens"] == fresh.usage.total_tokens  # type: ignore[union-attr]


def test_intent_is_the_last_user_item(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """The last user item's text decides the policy: "latest news" is never cached."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    for _ in range(2):
        cached.responses.create(model="m", input=user_items("Explain Raft", "latest news?"))
    assert openai_server.calls == 2
    with capture_logs() as events:
        cached.responses.create(model="m", input=user_items("latest news?", "Define a trie"))
    assert events[-1]["policy"] == "long"


@pytest.mark.parametrize(
    "change", [{"temperature": 0.2}, {"instructions": "Be brief"}, {"model": "other"}]
)
def test_every_request_field_is_in_the_key(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache, change: dict[str, Any]
) -> None:
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    cached.responses.create(model="m", input="Explain Paxos")
    cached.responses.create(**{"model": "m", "input": "Explain Paxos", **change})
    cached.responses.create(**{"model": "m", "input": "Explain Paxos", **change})
    assert openai_server.calls == 2


@pytest.mark.parametrize(
    "state", [{"previous_response_id": "resp_1"}, {"conversation": "conv_1"}, {"background": True}]
)
def test_server_state_requests_are_never_cached(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache, state: dict[str, Any]
) -> None:
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    with capture_logs() as events:
        cached.responses.create(model="m", input="Explain Paxos", **state)
        cached.responses.create(model="m", input="Explain Paxos", **state)
    assert openai_server.calls == 2
    bypasses = [e for e in events if e["event"] == "cache.bypass"]
    assert [e["reason"] for e in bypasses] == ["server_state"] * 2


def test_stream_is_replayed_as_the_same_typed_events(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    live = list(cached.responses.create(model="m", input="Explain gossip", stream=True))
    with cached.responses.create(model="m", input="Explain gossip", stream=True) as replay:
        replayed = list(replay)
    assert openai_server.calls == 1
    assert [type(e) for e in replayed] == [type(e) for e in live]
    assert [e.model_dump() for e in replayed] == [e.model_dump() for e in live]
    text = "".join(e.delta for e in replayed if e.type == "response.output_text.delta")
    assert text == replayed[-1].response.output_text == "answer #1 to: Explain gossip"


def test_stream_helper_works_uncached(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """``responses.stream(...)`` needs the SDK's own stream: it passes through."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    for n in (1, 2):
        with cached.responses.stream(model="m", input="Explain gossip") as stream:
            assert stream.get_final_response().output_text == f"answer #{n} to: Explain gossip"


def test_abandoned_stream_is_not_stored(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    with cached.responses.create(model="m", input="Explain gossip", stream=True) as stream:
        next(iter(stream))
    list(cached.responses.create(model="m", input="Explain gossip", stream=True))
    assert openai_server.calls == 2


def test_async_client_and_async_stream(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    _, client = clients(openai_server)
    cached = wrap_openai(client, cache=cache)

    async def main() -> tuple[list[Any], list[Any], Response, Response]:
        live = [e async for e in await cached.responses.create(model="m", input="q", stream=True)]
        again = [e async for e in await cached.responses.create(model="m", input="q", stream=True)]
        first = await cached.responses.create(model="m", input="Explain TCP")
        second = await cached.responses.create(model="m", input="Explain TCP")
        return live, again, first, second

    live, again, first, second = asyncio.run(main())
    assert openai_server.calls == 2
    assert [e.model_dump() for e in again] == [e.model_dump() for e in live]
    assert type(second) is Response and second.model_dump() == first.model_dump()
