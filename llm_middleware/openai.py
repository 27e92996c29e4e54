"""`wrap_openai`: an OpenAI client whose ``chat.completions.create`` is cached.

The intent text is the last user message. Every request field is part of the
key -- including fields this module has never heard of -- except the
transport-only ones (``timeout``, ``extra_headers``); the client's ``base_url``
is part of it too, so two servers never share answers. A hit is the same type
as a fresh answer (`ChatCompletion`), equal field by field. Streams
(``stream=True``) are passed through chunk by chunk while recorded, stored only
when they finish normally, and replayed as `ChatCompletionChunk` s on a hit.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, TypeVar

from openai import AsyncOpenAI, NotGiven, Omit, OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .chain import CallContext
from .codec import register_type
from .decorator import decorate
from .flow import Commit
from .options import CacheOptions

__all__ = ["wrap_openai"]

ClientT = TypeVar("ClientT", OpenAI, AsyncOpenAI)

TRANSPORT_OPTIONS = frozenset({"timeout", "extra_headers"})
"""Request options that change how a request travels, never what it answers."""


def _usage(value: Any) -> dict[str, int] | None:
    """The token counts of an answer (``prompt_tokens``, ``completion_tokens``,
    ``total_tokens``); nested details stay in the stored answer itself."""
    usage = getattr(value, "usage", None)
    if usage is None:
        return None
    return {k: v for k, v in usage.model_dump(mode="json").items() if type(v) is int}


def _stream_usage(chunks: list[ChatCompletionChunk]) -> dict[str, int] | None:
    for chunk in reversed(chunks):
        if chunk.usage is not None:
            return _usage(chunk)
    return None


def _restored(completion: ChatCompletion) -> ChatCompletion:
    """A stored answer has no HTTP request of its own: ``_request_id`` is None, as
    the SDK leaves it for a response without the header."""
    completion._request_id = None
    return completion


register_type(
    "openai.chat_completion",
    match=lambda value: type(value) is ChatCompletion,
    dump=lambda value: value.model_dump(mode="json"),
    load=lambda data: _restored(ChatCompletion.model_validate(data)),
    usage=_usage,
)
register_type(
    "openai.chat_completion_chunks",
    match=lambda value: isinstance(value, _Recording),
    dump=lambda value: [chunk.model_dump(mode="json") for chunk in value.chunks],
    load=lambda data: [ChatCompletionChunk.model_validate(chunk) for chunk in data],
    usage=lambda value: _stream_usage(value.chunks),
)


class _Recording:
    """The chunks of a finished stream, as stored."""

    __slots__ = ("chunks",)

    def __init__(self, chunks: list[ChatCompletionChunk]) -> None:
        self.chunks = chunks


class _Recorder:
    """What a live stream's sync and async wrappers share: the recording, and the
    rule for storing it."""

    def __init__(self, stream: Any, commit: Commit) -> None:
        self._stream = stream
        self._commit = commit
        self._chunks: list[ChatCompletionChunk] = []
        self._started = time.perf_counter()

    @property
    def response(self) -> Any:
        """The live stream's HTTP response."""
        return self._stream.response

    def _finished(self) -> tuple[_Recording, float] | None:
        """The recording to store once the stream ended, or None when it must not be
        stored: no choice finished, or one stopped at the token limit (a truncated
        answer is not an answer to reuse)."""
        reasons = [c.finish_reason for chunk in self._chunks for c in chunk.choices]
        finished = [reason for reason in reasons if reason]
        if not finished or "length" in finished:
            return None
        return _Recording(self._chunks), (time.perf_counter() - self._started) * 1000


class RecordingStream(_Recorder):
    """A live stream passed through to the caller while its chunks are recorded.

    The recording is stored only when the caller has read the stream to its end
    and it finished normally; closing it early, an error, or a ``length`` finish
    store nothing.
    """

    def __init__(self, stream: Any, commit: Commit) -> None:
        super().__init__(stream, commit)
        self._iterator = iter(stream)

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        try:
            chunk: ChatCompletionChunk = next(self._iterator)
        except StopIteration:
            done = self._finished()
            if done is not None:
                self._commit(*done)
            raise
        self._chunks.append(chunk)
        return chunk

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> RecordingStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRecordingStream(_Recorder):
    """`RecordingStream` for `AsyncOpenAI`."""

    def __init__(self, stream: Any, commit: Commit) -> None:
        super().__init__(stream, commit)
        self._iterator = stream.__aiter__()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            chunk: ChatCompletionChunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            done = self._finished()
            if done is not None:
                await self._commit.acall(*done)
            raise
        self._chunks.append(chunk)
        return chunk

    async def close(self) -> None:
        await self._stream.close()

    async def __aenter__(self) -> AsyncRecordingStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class ReplayStream:
    """A stored stream replayed: the same chunks, as `ChatCompletionChunk` objects.
    It made no HTTP request: ``response`` is None."""

    response = None

    def __init__(self, chunks: list[ChatCompletionChunk]) -> None:
        self._chunks = iter(chunks)

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks = iter(())

    def __enter__(self) -> ReplayStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncReplayStream:
    """`ReplayStream` for `AsyncOpenAI`."""

    response = None

    def __init__(self, chunks: list[ChatCompletionChunk]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        self._chunks = iter(())

    async def __aenter__(self) -> AsyncReplayStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _StreamAdapter:
    """Streams are recorded on a miss and replayed on a hit; they are never shared
    between concurrent callers (each caller reads its own stream)."""

    def __init__(self, is_async: bool) -> None:
        self.is_async = is_async

    def shareable(self, ctx: CallContext) -> bool:
        return not ctx.arguments["request"].get("stream")

    def on_hit(self, value: Any) -> Any:
        if isinstance(value, list):  # stored chunks
            return AsyncReplayStream(value) if self.is_async else ReplayStream(value)
        return value

    def on_miss(self, value: Any, commit: Commit) -> tuple[Any, bool]:
        if isinstance(value, ChatCompletion):
            return value, True
        if self.is_async:
            return AsyncRecordingStream(value, commit), False
        return RecordingStream(value, commit), False


def _passes_through(kwargs: Mapping[str, Any]) -> bool:
    """The SDK's own helpers (raw responses, ``.stream()``) mark their calls with
    ``X-Stainless-*`` headers and need the SDK's own return types: not cached."""
    headers = kwargs.get("extra_headers") or {}
    return any(
        str(name).lower() in ("x-stainless-raw-response", "x-stainless-helper-method")
        for name in headers
    )


def wrap_openai(client: ClientT, **options: Any) -> ClientT:
    """A copy of ``client`` (`OpenAI` or `AsyncOpenAI`) whose
    ``chat.completions.create`` is cached; ``client`` itself is left unchanged.

    ``options`` are those of `cache_by_intent` (``cache``, ``rules``, ``namespace``,
    ``tiers_for``, ``steps``); ``ignore`` names request fields to leave out of the key.
    """
    if not isinstance(client, (OpenAI, AsyncOpenAI)):
        raise TypeError(f"wrap_openai takes an OpenAI or AsyncOpenAI client, not {client!r}")
    ignore = frozenset(options.pop("ignore", ()))
    is_async = isinstance(client, AsyncOpenAI)
    clone = client.with_options()
    completions = clone.chat.completions
    original = completions.create
    endpoint = str(clone.base_url)

    def split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        request, transport = {}, {}
        for name, value in kwargs.items():
            if isinstance(value, (NotGiven, Omit)):
                continue  # the SDK's "absent": same request as leaving it out
            if name in TRANSPORT_OPTIONS or name in ignore:
                transport[name] = value
            else:
                request[name] = value
        return request, transport

    # the intent: the request's messages' last user text; read by argument name, not by
    # a callable, so a repeated request's decision is remembered (llm_middleware/memo.py)
    settings = CacheOptions.of(prompt_arg="request", ignore=("transport",), **options)
    adapter = _StreamAdapter(is_async)
    if is_async:

        async def acreate(endpoint: str, request: dict[str, Any], transport: Any) -> Any:
            return await original(**request, **transport)

        _name(acreate)
        cached_async = decorate(acreate, adapter=adapter, options=settings)

        async def create_async(**kwargs: Any) -> Any:
            if _passes_through(kwargs):
                return await original(**kwargs)
            request, transport = split(kwargs)
            return await cached_async(endpoint, request, transport)

        setattr(completions, "create", create_async)  # noqa: B010 - shadows the method
    else:

        def create(endpoint: str, request: dict[str, Any], transport: Any) -> Any:
            return original(**request, **transport)

        _name(create)
        cached_sync = decorate(create, adapter=adapter, options=settings)

        def create_sync(**kwargs: Any) -> Any:
            if _passes_through(kwargs):
                return original(**kwargs)
            request, transport = split(kwargs)
            return cached_sync(endpoint, request, transport)

        setattr(completions, "create", create_sync)  # noqa: B010 - shadows the method
    return clone


def _name(func: Any) -> None:
    """Name the cached call after the API it stands for, in keys and trace events."""
    func.__module__ = "openai"
    func.__qualname__ = func.__name__ = "chat.completions.create"
