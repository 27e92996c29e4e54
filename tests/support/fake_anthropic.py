"""A small Anthropic-compatible Messages API server for tests (``POST /v1/messages``).

The same HTTP machinery, counters and failure knobs as `FakeOpenAIServer` (see
``tests/support/fake_openai.py``); point the real ``anthropic`` client at it::

    with FakeAnthropicServer() as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
        reply = client.messages.create(
            model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.content[0].text == "answer #1 to: hi"

Call N answers ``"answer #N to: <last user text>"`` with ``stop_reason="end_turn"``. With
``tools`` (unless ``tool_choice`` is ``{"type": "none"}``) it answers one ``tool_use`` block
calling the first tool (``stop_reason="tool_use"``), its input filling each schema property
with the prompt. ``max_tokens`` below 5 cuts the text to that many words
(``stop_reason="max_tokens"``). ``stream=True`` sends Anthropic's events (``message_start``,
``content_block_start``, ``ping``, ``content_block_delta`` per word or JSON piece,
``content_block_stop``, ``message_delta``, ``message_stop``) as ``event:``/``data:`` lines.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support.fake_openai import FakeOpenAIServer, Route

JSONDict = dict[str, Any]
_WORD = re.compile(r"\S*\s*")
_LENGTH_LIMIT = 5
_JSON_PIECE = 8


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [str(b.get("text", "")) for b in content if isinstance(b, dict)]
        return " ".join(texts).strip()
    return ""


def prompt(body: JSONDict) -> str:
    """The text of the last user message."""
    users = [
        m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"
    ]
    return _text(users[-1].get("content")) if users else ""


def _tool(body: JSONDict) -> JSONDict | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t]
    choice = body.get("tool_choice")
    if not tools or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    return tools[0]


def _blocks(body: JSONDict, call: int) -> tuple[list[JSONDict], str]:
    text = prompt(body)
    tool = _tool(body)
    if tool is not None:
        schema = tool.get("input_schema") or {}
        arguments = {name: text for name in (schema.get("properties") or {})}
        block = {
            "type": "tool_use",
            "id": f"toolu_{call}",
            "name": tool["name"],
            "input": arguments,
        }
        return [block], "tool_use"
    answer = f"answer #{call} to: {text}"
    limit = body.get("max_tokens")
    if isinstance(limit, int) and limit < _LENGTH_LIMIT:
        words = [w for w in _WORD.findall(answer) if w][: max(limit, 1)]
        return [{"type": "text", "text": "".join(words).rstrip()}], "max_tokens"
    return [{"type": "text", "text": answer}], "end_turn"


def _usage(body: JSONDict, blocks: list[JSONDict]) -> JSONDict:
    tokens_in = sum(len(_text(m.get("content"))) // 4 + 3 for m in body.get("messages") or [])
    tokens_out = sum(len(json.dumps(block)) // 8 + 1 for block in blocks)
    return {"input_tokens": tokens_in, "output_tokens": tokens_out}


def _message(body: JSONDict, call: int, content: list[JSONDict], stop: str | None) -> JSONDict:
    return {
        "id": f"msg_{call}",
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model", "")),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _usage(body, content),
    }


class Messages:
    def answer(self, body: JSONDict, call: int) -> JSONDict:
        blocks, stop = _blocks(body, call)
        return _message(body, call, blocks, stop)

    def stream(self, body: JSONDict, call: int) -> list[str]:
        blocks, stop = _blocks(body, call)
        start = _message(body, call, [], None)
        start["usage"] = {**start["usage"], "output_tokens": 1}
        events: list[JSONDict] = [{"type": "message_start", "message": start}]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                first = {"type": "text", "text": ""}
                deltas = [
                    {"type": "text_delta", "text": w} for w in _WORD.findall(block["text"]) if w
                ]
            else:
                first = {**block, "input": {}}
                raw = json.dumps(block["input"])
                deltas = [
                    {"type": "input_json_delta", "partial_json": raw[i : i + _JSON_PIECE]}
                    for i in range(0, len(raw), _JSON_PIECE)
                ]
            events.append({"type": "content_block_start", "index": index, "content_block": first})
            if index == 0:
                events.append({"type": "ping"})
            events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
            events.append({"type": "content_block_stop", "index": index})
        usage = {"output_tokens": _usage(body, blocks)["output_tokens"]}
        delta = {"stop_reason": stop, "stop_sequence": None}
        events.append({"type": "message_delta", "delta": delta, "usage": usage})
        events.append({"type": "message_stop"})
        return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events]


class FakeAnthropicServer(FakeOpenAIServer):
    """An Anthropic-compatible HTTP server on a free loopback port, run in a daemon thread."""

    base_path = ""  # the anthropic client posts to {base_url}/v1/messages

    def routes(self) -> dict[str, Route]:
        return {"/v1/messages": Messages()}

    def error_body(self, message: str, kind: str, code: str | None) -> JSONDict:
        kind = "api_error" if kind == "server_error" else kind
        return {"type": "error", "error": {"type": kind, "message": message}}
