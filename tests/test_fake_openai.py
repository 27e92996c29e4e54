"""The real ``openai`` client (sync and async) works against the fake OpenAI server.

The ``openai_server`` fixture comes from ``tests.support.fixtures_openai`` (loaded by
``conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("openai")

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from tests.support.fake_openai import SYSTEM_FINGERPRINT, FakeOpenAIServer

MODEL = "gpt-test"
QUESTION = "What is the capital of France?"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": QUESTION},
]
WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        },
    },
}


@pytest.fixture
def client(openai_server: FakeOpenAIServer) -> Iterator[openai.OpenAI]:
    """A sync client without retries, pointed at the fake server."""
    with openai.OpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0) as client:
        yield client


def async_client(server: FakeOpenAIServer) -> openai.AsyncOpenAI:
    """An async client without retries, pointed at ``server``."""
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def test_completion_parses_into_chat_completion_with_usage(client: openai.OpenAI) -> None:
    """A plain create() returns a ChatCompletion echoing the model, with a numbered answer."""
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert isinstance(completion, ChatCompletion)
    assert completion.id == "chatcmpl-1"
    assert completion.model == MODEL
    assert completion.system_fingerprint == SYSTEM_FINGERPRINT
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == f"answer #1 to: {QUESTION}"
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_calls_and_requests_count_what_reached_the_server(
    openai_server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    """Every call is fresh (new id and number), counted, recorded, and reset() forgets them."""
    first = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    second = client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0)

    assert first.id != second.id
    assert second.choices[0].message.content == f"answer #2 to: {QUESTION}"
    assert openai_server.calls == 2
    assert [r["messages"] for r in openai_server.requests] == [MESSAGES, MESSAGES]
    assert openai_server.requests[1]["temperature"] == 0
    openai_server.reset()
    assert (openai_server.calls, openai_server.requests) == (0, [])


def test_n_returns_n_distinct_choices(client: openai.OpenAI) -> None:
    """n=3 yields three indexed choices with distinct contents."""
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, n=3)

    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert len({c.message.content for c in completion.choices}) == 3


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
def test_small_token_limit_finishes_with_length(client: openai.OpenAI, limit: str) -> None:
    """A token limit below 5 cuts the answer short with finish_reason "length"."""
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_body={limit: 2}
    )

    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "answer #1"


def test_json_object_response_format_returns_json(client: openai.OpenAI) -> None:
    """response_format json_object makes the content a JSON object string."""
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, response_format={"type": "json_object"}
    )

    content = completion.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"answer": f"answer #1 to: {QUESTION}", "call": 1}


def test_tools_answer_with_a_parsed_tool_call(client: openai.OpenAI) -> None:
    """With tools, the message carries a function tool call whose arguments are JSON."""
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL]
    )

    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": QUESTION, "days": 1}


def test_stream_chunks_add_up_to_the_answer(client: openai.OpenAI) -> None:
    """stream=True yields ChatCompletionChunks whose deltas join into the usual answer."""
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert {chunk.id for chunk in chunks} == {"chatcmpl-1"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks]
    assert sum(1 for piece in pieces if piece) > 3
    assert "".join(pieces) == f"answer #1 to: {QUESTION}"
    assert all(chunk.usage is None for chunk in chunks)


def test_stream_include_usage_sends_a_final_usage_chunk(client: openai.OpenAI) -> None:
    """include_usage adds a last chunk with no choices and the token usage."""
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    *chunks, last = list(stream)

    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_tool_call_arguments_arrive_in_deltas(client: openai.OpenAI) -> None:
    """Streamed tool calls name the function first, then send the arguments in pieces."""
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
    )
    deltas = [chunk.choices[0].delta for chunk in stream]

    head = (deltas[0].tool_calls or [])[0]
    assert (head.index, head.id, head.type) == (0, "call_1_0", "function")
    assert head.function is not None
    assert head.function.name == "get_weather"
    pieces = [
        call.function.arguments or ""
        for delta in deltas[1:]
        for call in delta.tool_calls or []
        if call.function is not None
    ]
    assert len(pieces) > 2
    assert json.loads("".join(pieces)) == {"city": QUESTION, "days": 1}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (429, openai.RateLimitError),
        (400, openai.BadRequestError),
    ],
)
def test_fail_next_raises_the_matching_status_error(
    openai_server: FakeOpenAIServer,
    client: openai.OpenAI,
    status: int,
    error: type[openai.APIStatusError],
) -> None:
    """fail_next(status) raises that status's openai error once, then calls succeed again."""
    openai_server.fail_next(status)

    with pytest.raises(error) as excinfo:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert excinfo.value.status_code == status
    assert isinstance(excinfo.value.body, dict)
    assert "Injected failure" in excinfo.value.body["message"]
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == f"answer #2 to: {QUESTION}"
    assert openai_server.calls == 2


def test_default_retries_call_the_server_again(openai_server: FakeOpenAIServer) -> None:
    """With retries on, the client retries 5xx by itself and every attempt is counted."""
    openai_server.fail_next(500, times=2, retry_after_ms=1)

    with openai.OpenAI(base_url=openai_server.base_url, api_key="test") as client:
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert completion.choices[0].message.content == f"answer #3 to: {QUESTION}"
    assert openai_server.calls == 3


def test_broken_stream_raises_api_connection_error(
    openai_server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    """A stream cut after two chunks yields them, then raises APIConnectionError."""
    openai_server.break_stream_next(after_chunks=2)
    received: list[ChatCompletionChunk] = []

    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError) as excinfo:
        received.extend(stream)

    assert len(received) == 2
    assert type(excinfo.value.__cause__).__name__ == "RemoteProtocolError"
    assert client.chat.completions.create(model=MODEL, messages=MESSAGES).id == "chatcmpl-2"


def test_stream_can_be_abandoned_halfway(
    openai_server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    """With chunk_delay, a consumer can close a stream early and keep using the server."""
    openai_server.chunk_delay = 0.02

    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    first, second = next(stream), next(stream)
    stream.close()

    assert first.choices[0].delta.role == "assistant"
    assert second.choices[0].delta.content == "answer "
    assert client.chat.completions.create(model=MODEL, messages=MESSAGES).id == "chatcmpl-2"


def test_delay_slows_answers_and_trips_client_timeouts(
    openai_server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    """delay holds each answer back; a shorter client timeout raises APITimeoutError."""
    openai_server.delay = 0.2

    started = time.monotonic()
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert time.monotonic() - started >= 0.2
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, timeout=0.05)


def test_unknown_path_is_an_openai_404(
    openai_server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    """Endpoints other than chat completions raise NotFoundError and are not counted."""
    with pytest.raises(openai.NotFoundError) as excinfo:
        client.models.list()

    assert isinstance(excinfo.value.body, dict)
    assert excinfo.value.body["code"] == "unknown_url"
    assert openai_server.calls == 0


def test_with_raw_response_exposes_headers_and_parses(client: openai.OpenAI) -> None:
    """with_raw_response gives HTTP headers and parse() returns the ChatCompletion."""
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)

    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["x-request-id"] == "req_fake_1"
    assert isinstance(raw.parse(), ChatCompletion)


def test_async_client_completes_and_streams(openai_server: FakeOpenAIServer) -> None:
    """AsyncOpenAI gets the same numbered answer, plain and streamed."""

    async def run() -> tuple[str | None, str]:
        async with async_client(openai_server) as client:
            completion = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True
            )
            pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
        return completion.choices[0].message.content, "".join(pieces)

    assert asyncio.run(run()) == (f"answer #1 to: {QUESTION}", f"answer #2 to: {QUESTION}")


def test_async_broken_stream_raises_api_connection_error(openai_server: FakeOpenAIServer) -> None:
    """An async stream cut after three chunks yields them, then raises APIConnectionError."""
    openai_server.break_stream_next(after_chunks=3)
    received: list[ChatCompletionChunk] = []

    async def run() -> None:
        async with async_client(openai_server) as client:
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True
            )
            async for chunk in stream:
                received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        asyncio.run(run())
    assert len(received) == 3


def test_server_answers_concurrent_requests_in_parallel(openai_server: FakeOpenAIServer) -> None:
    """Slow requests sent together overlap instead of queueing behind each other."""
    openai_server.delay = 0.2

    async def run() -> tuple[float, list[ChatCompletion]]:
        async with async_client(openai_server) as client:
            create = client.chat.completions.create
            started = time.monotonic()
            replies = await asyncio.gather(
                *(create(model=MODEL, messages=MESSAGES) for _ in range(4))
            )
            return time.monotonic() - started, replies

    elapsed, completions = asyncio.run(run())

    assert elapsed < 0.6  # one after another would take at least 0.8 s
    assert sorted(c.id for c in completions) == [f"chatcmpl-{n}" for n in range(1, 5)]
    assert openai_server.calls == 4


def test_base_url_needs_a_running_server() -> None:
    """base_url is only available between start() and stop()."""
    server = FakeOpenAIServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/v1")
    with pytest.raises(RuntimeError):
        _ = server.base_url
