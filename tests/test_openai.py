"""`wrap_openai` against a local OpenAI-compatible server, with the real openai client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

openai = pytest.importorskip("openai")

from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402
from structlog.testing import capture_logs  # noqa: E402

from llm_middleware import MultiLevelCache  # noqa: E402
from llm_middleware.openai import wrap_openai  # noqa: E402
from tests.support.fake_openai import FakeOpenAIServer  # noqa: E402

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a term up",
            "parameters": {"type": "object", "properties": {"term": {"type": "string"}}},
        },
    }
]


def ask(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": prompt}], **extra}


def clients(server: FakeOpenAIServer) -> tuple[Any, Any]:
    options = {"base_url": server.base_url, "api_key": "test", "max_retries": 0}
    return openai.OpenAI(**options), openai.AsyncOpenAI(**options)


def test_repeated_request_is_one_upstream_call(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """A repeated request returns an equal ChatCompletion without a second upstream call."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    fresh = cached.chat.completions.create(**ask("Explain the CAP theorem"))
    with capture_logs() as events:
        again = cached.chat.completions.create(**ask("Explain the CAP theorem"))
    assert openai_server.calls == 1
    assert type(again) is ChatCompletion
    assert again.model_dump() == fresh.model_dump()
    assert again.usage is not None and again.usage.total_tokens > 0
    result = events[-1]
    assert (result["outcome"], result["fn"]) == ("hit", "openai.chat.completions.create")
    assert result["saved_tokens"] == fresh.usage.total_tokens  # type: ignore[union-attr]
    assert result["saved_ms"] > 0


def test_async_client_is_cached_too(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """The same holds for AsyncOpenAI."""
    _, client = clients(openai_server)
    cached = wrap_openai(client, cache=cache)

    async def main() -> tuple[ChatCompletion, ChatCompletion]:
        first = await cached.chat.completions.create(**ask("What is a Bloom filter?"))
        second = await cached.chat.completions.create(**ask("What is a Bloom filter?"))
        return first, second

    first, second = asyncio.run(main())
    assert openai_server.calls == 1
    assert type(second) is ChatCompletion and second.model_dump() == first.model_dump()


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.9},
        {"tools": TOOLS},
        {"response_format": {"type": "json_object"}},
        {"seed": 7},
        {"extra_body": {"vendor_option": True}},
        {"model": "gpt-other"},
    ],
)
def test_fields_that_shape_the_answer_make_a_new_call(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache, change: dict[str, Any]
) -> None:
    """Any request field that may change the answer -- known or not -- is in the key."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    cached.chat.completions.create(**ask("Explain Raft"))
    cached.chat.completions.create(**{**ask("Explain Raft"), **change})
    cached.chat.completions.create(**{**ask("Explain Raft"), **change})
    assert openai_server.calls == 2


def test_transport_options_are_not_in_the_key(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """``timeout`` and ``extra_headers`` change how a request travels, not its answer."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    cached.chat.completions.create(**ask("Explain Raft"), timeout=30)
    cached.chat.completions.create(**ask("Explain Raft"), extra_headers={"X-Trace": "1"})
    cached.chat.completions.create(**ask("Explain Raft"), temperature=openai.NOT_GIVEN)
    assert openai_server.calls == 1


def test_time_sensitive_prompt_is_never_cached(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """A "latest news" prompt reaches the server every time."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    for _ in range(3):
        cached.chat.completions.create(**ask("What is the latest news?"))
    assert openai_server.calls == 3


def test_tool_calls_round_trip(openai_server: FakeOpenAIServer, cache: MultiLevelCache) -> None:
    """A cached tool-call answer keeps its tool calls and finish_reason."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    fresh = cached.chat.completions.create(**ask("Explain RPC", tools=TOOLS))
    again = cached.chat.completions.create(**ask("Explain RPC", tools=TOOLS))
    assert openai_server.calls == 1
    assert again.choices[0].finish_reason == "tool_calls"
    assert again.choices[0].message.tool_calls == fresh.choices[0].message.tool_calls
    assert again.model_dump() == fresh.model_dump()


def test_original_client_is_unchanged(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """The client passed in still makes uncached calls."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    cached.chat.completions.create(**ask("Explain Raft"))
    client.chat.completions.create(**ask("Explain Raft"))
    client.chat.completions.create(**ask("Explain Raft"))
    assert openai_server.calls == 3
    assert cached is not client


def test_server_error_is_raised_and_not_stored(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """An HTTP 500 is the client's usual exception, and the next call tries again."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    openai_server.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        cached.chat.completions.create(**ask("Explain Raft"))
    cached.chat.completions.create(**ask("Explain Raft"))
    cached.chat.completions.create(**ask("Explain Raft"))
    assert openai_server.calls == 2


def test_raw_response_helper_passes_through(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """The SDK's ``with_raw_response`` keeps working (uncached) on a wrapped client."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    raw = cached.chat.completions.with_raw_response.create(**ask("Explain Raft"))
    assert raw.headers["x-request-id"]
    assert type(raw.parse()) is ChatCompletion


# -- streams --------------------------------------------------------------------------


def dumps(chunks: list[ChatCompletionChunk]) -> list[dict[str, Any]]:
    return [chunk.model_dump() for chunk in chunks]


def test_stream_is_replayed_identically(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """A stream read to its end is replayed chunk for chunk, with no upstream call."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    live = list(cached.chat.completions.create(**ask("Explain Paxos"), stream=True))
    assert len(live) > 2 and all(type(c) is ChatCompletionChunk for c in live)
    with cached.chat.completions.create(**ask("Explain Paxos"), stream=True) as replay:
        replayed = list(replay)
    assert openai_server.calls == 1
    assert dumps(replayed) == dumps(live)


def test_stream_tool_call_deltas_replay_intact(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """Tool-call deltas of a stream come back exactly as they streamed."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    request = {**ask("Explain RPC", tools=TOOLS), "stream": True}
    live = list(cached.chat.completions.create(**request))
    replayed = list(cached.chat.completions.create(**request))
    assert openai_server.calls == 1
    assert any(c.choices and c.choices[0].delta.tool_calls for c in replayed)
    assert dumps(replayed) == dumps(live)


def test_async_stream_is_replayed(openai_server: FakeOpenAIServer, cache: MultiLevelCache) -> None:
    """Async streams are recorded and replayed through ``async for``."""
    _, client = clients(openai_server)
    cached = wrap_openai(client, cache=cache)

    async def read() -> list[ChatCompletionChunk]:
        stream = await cached.chat.completions.create(**ask("Explain Paxos"), stream=True)
        return [chunk async for chunk in stream]

    async def main() -> tuple[list[ChatCompletionChunk], list[ChatCompletionChunk]]:
        return await read(), await read()

    live, replayed = asyncio.run(main())
    assert openai_server.calls == 1
    assert dumps(replayed) == dumps(live)


def test_abandoned_stream_is_not_stored(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """A stream the caller stops reading halfway stores nothing."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    with cached.chat.completions.create(**ask("Explain Paxos in detail"), stream=True) as stream:
        next(iter(stream))
    list(cached.chat.completions.create(**ask("Explain Paxos in detail"), stream=True))
    assert openai_server.calls == 2


def test_broken_stream_raises_and_is_not_stored(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """A stream cut by the server raises the client's error and stores nothing."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    openai_server.break_stream_next(after_chunks=2)
    with pytest.raises(openai.APIConnectionError):
        list(cached.chat.completions.create(**ask("Explain Paxos"), stream=True))
    list(cached.chat.completions.create(**ask("Explain Paxos"), stream=True))
    assert openai_server.calls == 2


def test_truncated_stream_is_not_stored(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """A stream that stopped at the token limit (finish_reason "length") is not reused."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    request = {**ask("Explain Paxos"), "stream": True, "max_tokens": 2}
    for _ in range(2):
        chunks = list(cached.chat.completions.create(**request))
        assert chunks[-1].choices[0].finish_reason == "length"
    assert openai_server.calls == 2


def test_usage_details_round_trip(cache: MultiLevelCache) -> None:
    """An answer whose usage has nested token details is stored and read back equal."""
    completion = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-test",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "hi"},
                }
            ],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 7,
                "total_tokens": 12,
                "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": 0},
                "prompt_tokens_details": {"cached_tokens": 2},
            },
        }
    )
    cache.set("answer", completion, ttl=60)
    again = cache.get("answer")
    assert type(again) is ChatCompletion and again.model_dump() == completion.model_dump()


def test_a_hit_looks_like_an_answer_without_a_request(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache
) -> None:
    """A cached ChatCompletion has ``_request_id`` None and a replayed stream has
    ``response`` None: they made no HTTP request."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    fresh = cached.chat.completions.create(**ask("Explain Raft"))
    assert fresh._request_id == "req_fake_1"
    assert cached.chat.completions.create(**ask("Explain Raft"))._request_id is None
    live = cached.chat.completions.create(**ask("Explain Paxos"), stream=True)
    assert live.response is not None
    list(live)
    assert cached.chat.completions.create(**ask("Explain Paxos"), stream=True).response is None


def test_streams_are_never_served_stale(openai_server: FakeOpenAIServer) -> None:
    """With ``stale_ttl``, a plain answer may be served stale, a stream never is."""
    from llm_middleware.backends.memory import MemoryBackend
    from llm_middleware.testing import FakeClock

    clock = FakeClock(1_000_000.0)
    cache = MultiLevelCache([MemoryBackend(maxsize=100, timer=clock)], timer=clock)
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache, stale_ttl=600)
    list(cached.chat.completions.create(**ask("Summarize Paxos"), stream=True))  # SHORT
    clock.advance(301)
    list(cached.chat.completions.create(**ask("Summarize Paxos"), stream=True))
    assert openai_server.calls == 2


@pytest.mark.parametrize("stream", [False, True])
def test_an_entry_of_another_type_under_its_key_is_a_miss(
    openai_server: FakeOpenAIServer, cache: MultiLevelCache, stream: bool
) -> None:
    """A well-formed entry of another type (a text answer, written into a shared tier by
    someone who knows the key) is never handed to a caller that expects a completion or
    a stream: it is a miss (``wrong_type``), and the caller gets the model's answer."""
    client, _ = clients(openai_server)
    cached = wrap_openai(client, cache=cache)
    request = ask("Explain the CAP theorem", stream=stream)
    with capture_logs() as events:
        reply = cached.chat.completions.create(**request)
        if stream:
            list(reply)
    key = events[-1]["key"]
    cache.set(key, "planted text", ttl=3600)
    with capture_logs() as events:
        reply = cached.chat.completions.create(**request)
        if stream:
            text = "".join(chunk.choices[0].delta.content or "" for chunk in reply)
        else:
            text = reply.choices[0].message.content
    assert text == "answer #2 to: Explain the CAP theorem"
    reasons = [e["reason"] for e in events if e["event"] == "cache.error"]
    assert reasons and set(reasons) == {"wrong_type"}  # once per tier it was planted in
