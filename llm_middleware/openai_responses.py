"""OpenAI's Responses API (``responses.create``) as `wrap_openai` caches it.

A `Response` round-trips type-exactly; a stream (``stream=True``) is recorded and
replayed as the same typed events (`ResponseStreamEvent`), stored only when it
ends with ``response.completed``. A request that depends on state kept by the
server -- ``previous_response_id``, ``conversation``, ``background=True`` -- is
never cached: it bypasses the cache with the reason ``server_state``. A hit
creates no stored response on the server (``store`` alone does not prevent
caching: a later ``previous_response_id`` cannot name a cached answer's id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openai._models import construct_type
from openai.types.responses import Response, ResponseStreamEvent

from .chain import CallContext
from .codec import register_type
from .errors import SkipCache
from .streams import StreamKind

__all__ = ["RESPONSE_STREAM", "SERVER_STATE_FIELDS", "Response", "server_state"]

SERVER_STATE_FIELDS = ("previous_response_id", "conversation")
"""Request fields that make the answer depend on state the server keeps."""


def _dump(value: Any) -> Any:
    """The JSON the server sent: the fields it set, no defaults added."""
    return value.model_dump(mode="json", exclude_unset=True)


def _build(kind: Any, data: Any) -> Any:
    """A model built from stored JSON as the SDK builds it from a reply (leniently:
    the SDK does not validate replies, and neither may a round trip)."""
    return construct_type(type_=kind, value=data)


def server_state(ctx: CallContext) -> None:
    """A chain step: requests that depend on server-side state are not cached."""
    request = ctx.arguments["request"]
    if request.get("background") or any(request.get(f) is not None for f in SERVER_STATE_FIELDS):
        raise SkipCache("server_state")


def _usage(value: Any) -> dict[str, int] | None:
    usage = getattr(value, "usage", None)
    if usage is None:
        return None
    return {k: v for k, v in usage.model_dump(mode="json").items() if type(v) is int}


def _restored(response: Response) -> Response:
    response._request_id = None  # a stored answer made no HTTP request of its own
    return response


def _final(events: Sequence[Any]) -> Any:
    return events[-1] if events else None


def _complete(events: Sequence[Any]) -> bool:
    last = _final(events)
    return getattr(last, "type", None) == "response.completed"


def _stream_usage(events: Sequence[Any]) -> dict[str, int] | None:
    last = _final(events)
    return _usage(getattr(last, "response", None)) if _complete(events) else None


RESPONSE_TAG = "openai.response"
"""The codec's type tag of a stored `Response`."""

register_type(
    RESPONSE_TAG,
    match=lambda value: type(value) is Response,
    dump=_dump,
    load=lambda data: _restored(_build(Response, data)),
    usage=_usage,
)
RESPONSE_STREAM = StreamKind(
    "openai.response_events",
    lambda data: _build(ResponseStreamEvent, data),
    _complete,
    _stream_usage,
    _dump,
)
RESPONSE_STREAM.register()
