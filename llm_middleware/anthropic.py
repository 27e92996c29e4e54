"""`wrap_anthropic`: an Anthropic client whose ``messages.create`` (and
``messages.stream(...)``) is cached.

As with `wrap_openai`: the intent text is the last user message; every request
field is in the key (``system``, ``tools``, ``tool_choice``, ``max_tokens``,
``temperature``, ``metadata``, ``thinking``, ... and fields never heard of) but
the transport-only ``timeout`` and ``extra_headers``, plus the client's
``base_url``; a hit is a `Message` equal to the fresh one; its input and output
tokens count as saved. ``stream=True`` and ``messages.stream(...)`` are recorded
and replayed as the same events; a stream stopped by ``max_tokens`` is not stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from anthropic import Anthropic, AsyncAnthropic, NotGiven, Omit
from anthropic._models import construct_type
from anthropic.lib.streaming import AsyncMessageStreamManager, MessageStreamManager
from anthropic.types import Message, RawMessageStreamEvent

from .clientwrap import shadow_method
from .codec import register_type
from .streams import StreamAdapter, StreamKind

__all__ = ["wrap_anthropic"]

ClientT = TypeVar("ClientT", Anthropic, AsyncAnthropic)


def _dump(value: Any) -> Any:
    """The JSON the server sent: the fields it set, no defaults added."""
    return value.model_dump(mode="json", exclude_unset=True)


def _build(kind: Any, data: Any) -> Any:
    """A model built from stored JSON as the SDK builds it from a reply."""
    return construct_type(type_=kind, value=data)


def _tokens(usage: Any) -> dict[str, int]:
    counts = {k: v for k, v in usage.model_dump(mode="json").items() if type(v) is int}
    counts["total_tokens"] = counts.get("input_tokens", 0) + counts.get("output_tokens", 0)
    return counts


def _usage(message: Any) -> dict[str, int] | None:
    usage = getattr(message, "usage", None)
    return None if usage is None else _tokens(usage)


def _restored(message: Message) -> Message:
    message._request_id = None  # a stored answer made no HTTP request of its own
    return message


def _complete(events: Sequence[Any]) -> bool:
    """A stream is an answer to reuse when it reached ``message_stop`` and was not
    cut by ``max_tokens`` (a truncated answer is not)."""
    if not events or getattr(events[-1], "type", None) != "message_stop":
        return False
    stops = [e.delta.stop_reason for e in events if getattr(e, "type", None) == "message_delta"]
    return "max_tokens" not in stops


def _stream_usage(events: Sequence[Any]) -> dict[str, int] | None:
    counts: dict[str, int] = {}
    for event in events:
        if event.type == "message_start":
            counts.update(_tokens(event.message.usage))
        elif event.type == "message_delta" and event.usage is not None:
            counts["output_tokens"] = event.usage.output_tokens
    if not counts:
        return None
    counts["total_tokens"] = counts.get("input_tokens", 0) + counts.get("output_tokens", 0)
    return counts


MESSAGE_TAG = "anthropic.message"
"""The codec's type tag of a stored `Message`."""

register_type(
    MESSAGE_TAG,
    match=lambda value: type(value) is Message,
    dump=_dump,
    load=lambda data: _restored(_build(Message, data)),
    usage=_usage,
)
MESSAGE_STREAM = StreamKind(
    "anthropic.message_events",
    lambda data: _build(RawMessageStreamEvent, data),
    _complete,
    _stream_usage,
    _dump,
)
MESSAGE_STREAM.register()


def wrap_anthropic(client: ClientT, **options: Any) -> ClientT:
    """A copy of ``client`` (`Anthropic` or `AsyncAnthropic`) whose
    ``messages.create`` and ``messages.stream`` are cached; ``client`` itself is
    left unchanged.

    ``options`` are those of `cache_by_intent` (``cache``, ``rules``, ``namespace``,
    ``tiers_for``, ``steps``); ``ignore`` names request fields to leave out of the key.
    """
    if not isinstance(client, (Anthropic, AsyncAnthropic)):
        raise TypeError(
            f"wrap_anthropic takes an Anthropic or AsyncAnthropic client, not {client!r}"
        )
    is_async = isinstance(client, AsyncAnthropic)
    clone = client.with_options()
    messages = clone.messages
    original_stream = messages.stream
    shadow_method(
        messages,
        api=("anthropic", "messages.create"),
        endpoint=str(clone.base_url),
        is_async=is_async,
        absent=(NotGiven, Omit),
        adapter=StreamAdapter(is_async, Message, MESSAGE_TAG, MESSAGE_STREAM),
        options=options,
    )
    create: Any = messages.create

    def stream(**kwargs: Any) -> Any:
        """``messages.stream(...)``: the SDK's stream helper over the cached create
        (``output_format`` requests pass through uncached)."""
        if not isinstance(kwargs.get("output_format", Omit()), (NotGiven, Omit)):
            return original_stream(**kwargs)
        kwargs.pop("output_format", None)
        request = {**kwargs, "stream": True}
        if is_async:
            return AsyncMessageStreamManager(create(**request), output_format=NotGiven())
        return MessageStreamManager(lambda: create(**request), output_format=NotGiven())

    setattr(messages, "stream", stream)  # noqa: B010 - shadows the method
    return clone
