"""`wrap_anthropic` against a local Anthropic-compatible server, with the real anthropic client."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")

from anthropic.types import Message  # noqa: E402
from structlog.testing import capture_logs  # noqa: E402

from llm_middleware import MultiLevelCache  # noqa: E402
from llm_middleware.anthropic import wrap_anthropic  # noqa: E402
from tests.support.fake_anthropic import FakeAnthropicServer  # noqa: E402

TEMPERATURE: dict[str, Any] = (
    {"temperature": 0.3}
    if "temperature" in inspect.signature(anthropic.resources.Messages.create).parameters
    else {"extra_body": {"temperature": 0.3}}
)
TOOLS = [
    {
        "name": "lookup",
        "description": "Look a term up",
        "input_schema": {"type": "object", "properties": {"term": {"type": "string"}}},
    }
]


def ask(prompt: str, **extra: Any) -> dict[str, Any]:
    request = {"model": "claude-test", "max_tokens": 256}
    return {**request, "messages": [{"role": "user", "content": prompt}], **extra}


def clients(server: FakeAnthropicServer) -> tuple[Any, Any]:
    options = {"base_url": server.base_url, "api_key": "test", "max_retries": 0}
    return anthropic.Anthropic(**options), anthropic.AsyncAnthropic(**options)


def test_repeated_request_is_an_equal_message_and_saves_tokens(
    anthropic_server: FakeAnthropicServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(anthropic_server)
    cached = wrap_anthropic(client, cache=cache)
    fresh = cached.messages.create(**ask("Explain the CAP theorem"))
    with capture_logs() as events:
        again = cached.messages.create(**ask("Explain the CAP theorem"))
    assert anthropic_server.calls == 1
    assert type(again) is Message and again == fresh
    assert again.content[0].text == "answer #1 to: Explain the CAP theorem"
    result = events[-1]
    assert (result["outcome"], result["fn"]) == ("hit", "anthropic.messages.create")
    assert result["saved_tokens"] == fresh.usage.input_tokens + fresh.usage.output_tokens


@pytest.mark.parametrize(
    "change",
    [
        {"system": "Be brief"},
        {"tools": TOOLS},
        {"tools": TOOLS, "tool_choice": {"type": "any"}},
        {"max_tokens": 100},
        {"stop_sequences": ["END"]},
        # SDKs that took temperature as an argument put it in the body; newer ones take
        # it through extra_body: in the key either way
        TEMPERATURE,
        {"metadata": {"user_id": "u1"}},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"extra_body": {"vendor_option": True}},
    ],
)
def test_every_request_field_is_in_the_key(
    anthropic_server: FakeAnthropicServer, cache: MultiLevelCache, change: dict[str, Any]
) -> None:
    client, _ = clients(anthropic_server)
    cached = wrap_anthropic(client, cache=cache)
    base = ask("Explain Raft", tools=TOOLS) if "tool_choice" in change else ask("Explain Raft")
    cached.messages.create(**base)
    cached.messages.create(**{**base, **change})
    cached.messages.create(**{**base, **change})
    assert anthropic_server.calls == 2


def test_client_is_left_unchanged(
    anthropic_server: FakeAnthropicServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(anthropic_server)
    cached = wrap_anthropic(client, cache=cache)
    cached.messages.create(**ask("Explain Raft"))
    client.messages.create(**ask("Explain Raft"))
    assert anthropic_server.calls == 2 and cached is not client


def test_tool_use_round_trips(
    anthropic_server: FakeAnthropicServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(anthropic_server)
    cached = wrap_anthropic(client, cache=cache)
    fresh = cached.messages.create(**ask("Explain RPC", tools=TOOLS))
    again = cached.messages.create(**ask("Explain RPC", tools=TOOLS))
    assert again.stop_reason == "tool_use" and again == fresh
    assert type(again.content[0]) is type(fresh.content[0])


def test_stream_true_is_replayed_as_equal_events(
    anthropic_server: FakeAnthropicServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(anthropic_server)
    cached = wrap_anthropic(client, cache=cache)
    live = list(cached.messages.create(**ask("Explain Paxos"), stream=True))
    with capture_logs() as events:
        replayed = list(cached.messages.create(**ask("Explain Paxos"), stream=True))
    assert anthropic_server.calls == 1
    assert [type(e) for e in replayed] == [type(e) for e in live]
    assert replayed == live
    assert events[-1]["saved_tokens"] > 0


def test_stream_helper_replays_equal_events_and_final_text(
    anthropic_server: FakeAnthropicServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(anthropic_server)
    cached = wrap_anthropic(client, cache=cache)
    with cached.messages.stream(**ask("Explain gossip")) as stream:
        live = list(stream)
        live_text = stream.get_final_text()
    with cached.messages.stream(**ask("Explain gossip")) as stream:
        replayed = list(stream)
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert anthropic_server.calls == 1
    assert replayed == live and text == live_text == "answer #1 to: Explain gossip"
    assert final.usage.output_tokens > 0


def test_truncated_or_abandoned_streams_are_not_stored(
    anthropic_server: FakeAnthropicServer, cache: MultiLevelCache
) -> None:
    client, _ = clients(anthropic_server)
    cached = wrap_anthropic(client, cache=cache)
    for _ in range(2):
        list(cached.messages.create(**ask("Explain Paxos", max_tokens=2), stream=True))
    with cached.messages.stream(**ask("Explain gossip")) as stream:
        next(iter(stream))
    list(cached.messages.create(**ask("Explain gossip"), stream=True))
    assert anthropic_server.calls == 4


def test_async_client_create_and_stream(
    anthropic_server: FakeAnthropicServer, cache: MultiLevelCache
) -> None:
    _, client = clients(anthropic_server)
    cached = wrap_anthropic(client, cache=cache)

    async def main() -> tuple[Message, Message, list[Any], list[Any], str]:
        first = await cached.messages.create(**ask("Explain TCP"))
        second = await cached.messages.create(**ask("Explain TCP"))
        async with cached.messages.stream(**ask("Explain UDP")) as stream:
            live = [e async for e in stream]
        async with cached.messages.stream(**ask("Explain UDP")) as stream:
            again = [e async for e in stream]
            text = await stream.get_final_text()
        return first, second, live, again, text

    first, second, live, again, text = asyncio.run(main())
    assert anthropic_server.calls == 2
    assert type(second) is Message and second == first
    assert again == live and text == "answer #2 to: Explain UDP"


FRESH_INTERPRETER = """
import json, sys
import anthropic, openai
from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend
from tests.support.fake_anthropic import FakeAnthropicServer
from tests.support.fake_openai import FakeOpenAIServer

integrations = {"llm_middleware.anthropic", "llm_middleware.openai"}
imported_at_start = sorted(integrations & set(sys.modules))
cache = MultiLevelCache([MemoryBackend()])
with FakeAnthropicServer() as claude_server, FakeOpenAIServer() as gpt_server:
    claude = anthropic.Anthropic(base_url=claude_server.base_url, api_key="t", max_retries=0)
    gpt = openai.OpenAI(base_url=gpt_server.base_url, api_key="t", max_retries=0)
    messages = [{"role": "user", "content": "Explain DNS"}]

    @cache_by_intent(cache=cache)
    def ask_claude(prompt):
        return claude.messages.create(model="m", max_tokens=100, messages=messages)

    @cache_by_intent(cache=cache)
    def ask_gpt(prompt):
        return gpt.chat.completions.create(model="m", messages=messages)

    answers = [ask_claude("Explain DNS"), ask_claude("Explain DNS")]
    replies = [ask_gpt("Explain DNS"), ask_gpt("Explain DNS")]
    print(json.dumps({
        "imported_at_start": imported_at_start,
        "calls": [claude_server.calls, gpt_server.calls],
        "types": [type(answers[1]).__name__, type(replies[1]).__name__],
        "equal": [answers[0] == answers[1], replies[0] == replies[1]],
        "hits": cache.stats()["hits"],
    }))
"""


def test_sdk_answers_are_cached_without_annotation_or_import() -> None:
    """A decorated function returning an Anthropic Message (or an OpenAI ChatCompletion)
    needs no ``-> Message`` annotation, nor ``llm_middleware.anthropic`` imported."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", FRESH_INTERPRETER],
        capture_output=True, text=True, timeout=120, cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["imported_at_start"] == []
    assert result["calls"] == [1, 1]
    assert result["types"] == ["Message", "ChatCompletion"]
    assert result["equal"] == [True, True]
    assert result["hits"] == {"L1": 2}
