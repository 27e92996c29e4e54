"""``POST /v1/responses`` of the fake OpenAI server (see ``tests/support/fake_openai.py``).

Request number N answers ``"answer #N to: <last user text>"`` -- the ``input`` string, or the
text parts of the last user item of an ``input`` list -- as one ``message`` output item.
``stream=True`` sends the Responses API's typed events (``event:`` and ``data:`` lines):
``response.created``, ``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, one ``response.output_text.delta`` per word,
``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done``
and ``response.completed``, numbered by ``sequence_number``; the deltas join to the text.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

JSONDict = dict[str, Any]
_WORD = re.compile(r"\S*\s*")


def prompt(body: JSONDict) -> str:
    """The last user text of a Responses request."""
    given = body.get("input")
    if isinstance(given, str):
        return given
    users = [
        item
        for item in given or []
        if isinstance(item, dict) and item.get("role", "user") == "user" and "content" in item
    ]
    if not users:
        return ""
    content = users[-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict)).strip()


def _response(body: JSONDict, call: int, status: str, output: list[JSONDict]) -> JSONDict:
    text = prompt(body)
    answer = "".join(part["text"] for item in output for part in item["content"])
    tokens_in, tokens_out = len(text) // 4 + 1, len(answer) // 4 + 1
    usage = {
        "input_tokens": tokens_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": tokens_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens_in + tokens_out,
    }
    return {
        "id": f"resp_{call}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": str(body.get("model", "")),
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "temperature": body.get("temperature", 1.0),
        "usage": usage if status == "completed" else None,
    }


def _message(call: int, text: str, status: str = "completed") -> JSONDict:
    part = {"type": "output_text", "text": text, "annotations": []}
    content = [part] if status == "completed" else []
    return {"type": "message", "id": f"msg_{call}", "status": status, "role": "assistant",
            "content": content}  # fmt: skip


class Responses:
    def answer(self, body: JSONDict, call: int) -> JSONDict:
        return _response(body, call, "completed", [_message(call, self.text(body, call))])

    def text(self, body: JSONDict, call: int) -> str:
        return f"answer #{call} to: {prompt(body)}"

    def stream(self, body: JSONDict, call: int) -> list[str]:
        text = self.text(body, call)
        item_id = f"msg_{call}"
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        empty_part = {"type": "output_text", "text": "", "annotations": []}
        full_part = {**empty_part, "text": text}
        events: list[JSONDict] = [
            {"type": "response.created", "response": _response(body, call, "in_progress", [])},
            {"type": "response.in_progress", "response": _response(body, call, "in_progress", [])},
            {"type": "response.output_item.added", "output_index": 0,
             "item": _message(call, "", "in_progress")},
            {"type": "response.content_part.added", **where, "part": empty_part},
            *({"type": "response.output_text.delta", **where, "delta": word, "logprobs": []}
              for word in _WORD.findall(text) if word),
            {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **where, "part": full_part},
            {"type": "response.output_item.done", "output_index": 0, "item": _message(call, text)},
            {"type": "response.completed", "response": self.answer(body, call)},
        ]  # fmt: skip
        return [
            f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': n})}\n\n"
            for n, event in enumerate(events)
        ]
