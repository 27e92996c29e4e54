"""`wrap_openai`: an OpenAI client whose ``chat.completions.create``,
``responses.create`` and ``embeddings.create`` are cached.

The intent text is the last user message (chat), or the last user input
(Responses: an ``input`` string, or the last user item's text parts). Every
request field is part of the key -- including fields this module has never
heard of -- except the transport-only ones (``timeout``, ``extra_headers``); the
client's ``base_url`` is part of it too, so two servers never share answers. A
hit is the same type as a fresh answer (`ChatCompletion`, `Response`), equal
field by field. Streams (``stream=True``) are passed through event by event while
recorded, stored only when they finish normally, and replayed as the same typed
events on a hit. Embeddings: see ``llm_middleware/openai_embeddings.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from openai import AsyncOpenAI, NotGiven, Omit, OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .clientwrap import HELPER_HEADER, TRANSPORT_OPTIONS, shadow_method
from .codec import register_type
from .openai_embeddings import wrap_embeddings
from .openai_responses import RESPONSE_STREAM, RESPONSE_TAG, Response, server_state
from .streams import StreamAdapter, StreamKind

__all__ = ["TRANSPORT_OPTIONS", "wrap_openai"]

ClientT = TypeVar("ClientT", OpenAI, AsyncOpenAI)


def _usage(value: Any) -> dict[str, int] | None:
    """The token counts of an answer (``prompt_tokens``, ``completion_tokens``,
    ``total_tokens``); nested details stay in the stored answer itself."""
    usage = getattr(value, "usage", None)
    if usage is None:
        return None
    return {k: v for k, v in usage.model_dump(mode="json").items() if type(v) is int}


def _stream_usage(chunks: Sequence[ChatCompletionChunk]) -> dict[str, int] | None:
    for chunk in reversed(chunks):
        if chunk.usage is not None:
            return _usage(chunk)
    return None


def _complete(chunks: Sequence[ChatCompletionChunk]) -> bool:
    """A chat stream is an answer to reuse when some choice finished, and none
    stopped at the token limit (a truncated answer is not)."""
    finished = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    return bool(finished) and "length" not in finished


def _restored(completion: ChatCompletion) -> ChatCompletion:
    """A stored answer has no HTTP request of its own: ``_request_id`` is None, as
    the SDK leaves it for a response without the header."""
    completion._request_id = None
    return completion


CHAT_COMPLETION_TAG = "openai.chat_completion"
"""The codec's type tag of a stored `ChatCompletion`."""

register_type(
    CHAT_COMPLETION_TAG,
    match=lambda value: type(value) is ChatCompletion,
    dump=lambda value: value.model_dump(mode="json"),
    load=lambda data: _restored(ChatCompletion.model_validate(data)),
    usage=_usage,
)
CHAT_STREAM = StreamKind(
    "openai.chat_completion_chunks", ChatCompletionChunk.model_validate, _complete, _stream_usage
)
CHAT_STREAM.register()


def wrap_openai(client: ClientT, **options: Any) -> ClientT:
    """A copy of ``client`` (`OpenAI` or `AsyncOpenAI`) whose
    ``chat.completions.create``, ``responses.create`` and ``embeddings.create`` are
    cached; ``client`` itself is left unchanged.

    ``options`` are those of `cache_by_intent` (``cache``, ``rules``, ``namespace``,
    ``tiers_for``, ``steps``); ``ignore`` names request fields to leave out of the
    key; ``embeddings_policy`` is the `CachePolicy` of embeddings (default LONG).
    """
    if not isinstance(client, (OpenAI, AsyncOpenAI)):
        raise TypeError(f"wrap_openai takes an OpenAI or AsyncOpenAI client, not {client!r}")
    embeddings_policy = options.pop("embeddings_policy", None)
    is_async = isinstance(client, AsyncOpenAI)
    clone = client.with_options()
    endpoint = str(clone.base_url)
    common: dict[str, Any] = {
        "endpoint": endpoint,
        "is_async": is_async,
        "absent": (NotGiven, Omit),
    }
    shadow_method(
        clone.chat.completions,
        api=("openai", "chat.completions.create"),
        adapter=StreamAdapter(is_async, ChatCompletion, CHAT_COMPLETION_TAG, CHAT_STREAM),
        options=options,
        **common,
    )
    shadow_method(
        clone.responses,
        api=("openai", "responses.create"),
        adapter=StreamAdapter(is_async, Response, RESPONSE_TAG, RESPONSE_STREAM),
        options=options,
        steps=(server_state,),
        **common,
    )
    _stream_helper_passes_through(clone.responses)
    wrap_embeddings(clone.embeddings, endpoint, is_async, options, embeddings_policy)
    return clone


def _stream_helper_passes_through(responses: Any) -> None:
    """``responses.stream(...)`` calls ``responses.create`` and needs the SDK's own
    stream (its HTTP response) back: its calls are marked as a helper's, uncached."""
    original = responses.stream

    def stream(**kwargs: Any) -> Any:
        headers = {**(kwargs.pop("extra_headers", None) or {}), HELPER_HEADER: "responses.stream"}
        return original(**kwargs, extra_headers=headers)

    setattr(responses, "stream", stream)  # noqa: B010 - shadows the method
