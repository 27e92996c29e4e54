"""Streamed answers around the cache: recorded on a miss, replayed on a hit.

An integration describes its stream once (`StreamKind`): which events make a
complete answer worth storing, and how a recording is stored. A live stream is
passed through to the caller event by event while it is recorded, and stored
only when the caller read it to its end and it finished normally; a stored one
is replayed as the same typed events. Streams are never shared between
concurrent callers: each caller reads its own.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .chain import CallContext
from .codec import register_type
from .flow import Commit

__all__ = ["Recording", "StreamAdapter", "StreamKind"]


class Recording:
    """The events of a finished stream, as stored: ``kind`` names the `StreamKind`."""

    __slots__ = ("events", "kind")

    def __init__(self, kind: str, events: list[Any]) -> None:
        self.kind = kind
        self.events = events


@dataclass(frozen=True)
class StreamKind:
    """One integration's stream: ``tag`` names it in stored entries; ``load`` turns
    one stored event (JSON data) back into its typed event; ``complete`` says whether
    the events make an answer to reuse (a truncated one is not); ``usage`` reads
    the token counts from the events; ``dump`` turns one event into JSON data."""

    tag: str
    load: Callable[[Any], Any]
    complete: Callable[[Sequence[Any]], bool]
    usage: Callable[[Sequence[Any]], dict[str, int] | None]
    dump: Callable[[Any], Any] = lambda event: event.model_dump(mode="json")

    def register(self) -> None:
        """Teach the codec this kind's recordings (stored as their events' JSON)."""
        register_type(
            self.tag,
            match=lambda value: isinstance(value, Recording) and value.kind == self.tag,
            dump=lambda value: [self.dump(event) for event in value.events],
            load=lambda data: [self.load(event) for event in data],
            usage=lambda value: self.usage(value.events),
        )


class _Recorder:
    """What a live stream's sync and async wrappers share: the recording, and the
    rule for storing it."""

    def __init__(self, stream: Any, commit: Commit, kind: StreamKind) -> None:
        self._stream = stream
        self._commit = commit
        self._kind = kind
        self._events: list[Any] = []
        self._started = time.perf_counter()

    @property
    def response(self) -> Any:
        """The live stream's HTTP response."""
        return self._stream.response

    def _finished(self) -> tuple[Recording, float] | None:
        """The recording to store once the stream ended, or None when it must not be."""
        if not self._kind.complete(self._events):
            return None
        ms = (time.perf_counter() - self._started) * 1000
        return Recording(self._kind.tag, self._events), ms


class RecordingStream(_Recorder):
    """A live stream passed through to the caller while its events are recorded."""

    def __init__(self, stream: Any, commit: Commit, kind: StreamKind) -> None:
        super().__init__(stream, commit, kind)
        self._iterator = iter(stream)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            event = next(self._iterator)
        except StopIteration:
            done = self._finished()
            if done is not None:
                self._commit(*done)
            raise
        self._events.append(event)
        return event

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> RecordingStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRecordingStream(_Recorder):
    """`RecordingStream` for async clients."""

    def __init__(self, stream: Any, commit: Commit, kind: StreamKind) -> None:
        super().__init__(stream, commit, kind)
        self._iterator = stream.__aiter__()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            event = await self._iterator.__anext__()
        except StopAsyncIteration:
            done = self._finished()
            if done is not None:
                await self._commit.acall(*done)
            raise
        self._events.append(event)
        return event

    async def close(self) -> None:
        await self._stream.close()

    async def __aenter__(self) -> AsyncRecordingStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class ReplayStream:
    """A stored stream replayed: the same typed events. It made no HTTP request:
    ``response`` is None."""

    response = None

    def __init__(self, events: list[Any]) -> None:
        self._events = iter(events)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._events)

    def close(self) -> None:
        self._events = iter(())

    def __enter__(self) -> ReplayStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncReplayStream:
    """`ReplayStream` for async clients."""

    response = None

    def __init__(self, events: list[Any]) -> None:
        self._events = iter(events)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        self._events = iter(())

    async def __aenter__(self) -> AsyncReplayStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class StreamAdapter:
    """The `ResultAdapter` of an API that answers either one object (``final``, stored
    at once) or, for ``stream=True`` requests, a stream of ``kind``."""

    def __init__(self, is_async: bool, final: type, final_tag: str, kind: StreamKind) -> None:
        self.is_async = is_async
        self.final = final
        self.kind = kind
        self.accepts: frozenset[str] | None = frozenset({final_tag, kind.tag})

    def shareable(self, ctx: CallContext) -> bool:
        return not ctx.arguments["request"].get("stream")

    def on_hit(self, value: Any) -> Any:
        if isinstance(value, list):  # stored events
            return AsyncReplayStream(value) if self.is_async else ReplayStream(value)
        return value

    def on_miss(self, value: Any, commit: Commit) -> tuple[Any, bool]:
        if isinstance(value, self.final):
            return value, True
        if self.is_async:
            return AsyncRecordingStream(value, commit, self.kind), False
        return RecordingStream(value, commit, self.kind), False
