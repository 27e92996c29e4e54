"""The backend contract: what every tier implements, built-in or plugin.

A backend module imports this module and nothing else of the library: the
protocols it implements (`Backend`, and optionally `AsyncBackend` and
`AtomicAdd`), the error it raises for bad options (`ConfigurationError`), and the
typed "no value" sentinel (`NO_VALUE`), and `checking_options`, around the checks
of a backend's options. ``llm_middleware.testing.BackendContract``
is the test suite that checks a backend against it.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from typing import Literal, Protocol, runtime_checkable

from .errors import ConfigurationError

__all__ = [
    "NO_VALUE",
    "AsyncBackend",
    "AtomicAdd",
    "Backend",
    "ConfigurationError",
    "NoValue",
    "NoValueType",
    "checking_options",
]


class NoValue(enum.Enum):
    """The type of `NO_VALUE`: one member, so ``Literal[NoValue.NO_VALUE]`` (or
    `NoValueType`) types "no value here" apart from ``None``, which may be a value."""

    NO_VALUE = "NO_VALUE"

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Literal[NoValue.NO_VALUE] = NoValue.NO_VALUE
"""No value: not found, not answered (a lookup that falls through to the next step)."""

NoValueType = Literal[NoValue.NO_VALUE]
"""The type of `NO_VALUE`, for annotations (``bytes | NoValueType``)."""


@runtime_checkable
class Backend(Protocol):
    """A byte store with per-entry lifetimes: one tier of a `MultiLevelCache`.

    Keys are printable ASCII without spaces, at most 250 bytes. Values are opaque
    bytes (an encoded envelope). ``ttl`` is in seconds (a float > 0); a backend
    with a lifetime cap of its own stores the entry for ``min(ttl, cap)``.

    Optional attributes read by the cache:

    - ``max_value_bytes: int | None`` -- values longer than this are not offered
      to the tier (the cache logs ``cache.bypass`` with reason ``too_large``).
    - ``max_inflated_bytes: int | None`` -- how far a compressed entry read from the
      tier may inflate (default: four times ``max_value_bytes``, else 32 MiB); past it the
      entry is a miss (``cache.error`` reason ``too_large``), and answers that would
      inflate past it are not stored in the tier.
    - ``nonblocking: bool`` -- ``True`` when ``get``/``set``/``delete`` never wait
      on I/O (an in-process store): async code then calls them inline, and an
      async hit in this tier is read inline, like a sync one.
    - ``shared: bool`` -- whether the tier's contents can be read from outside this
      process (a server, a file, another process). A cache with an ``encryption_key``
      encrypts every entry it writes to a shared tier. A backend that does not say is
      taken as shared; an in-process store sets ``shared = False``.

    Blocking backends are run in a worker thread from async code; a backend that
    can do better defines the async twins of `AsyncBackend`. A backend shared
    between processes that can store a key only when it is absent defines `add`
    (`AtomicAdd`): cross-process stampede locks are taken with it. Bad constructor
    options raise `ConfigurationError`.
    """

    def get(self, key: str) -> bytes | None:
        """Return the stored bytes, or ``None`` when absent or expired."""

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (capped by the tier)."""

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""

    def close(self) -> None:
        """Release connections and threads; the backend is not used afterwards."""


@runtime_checkable
class AsyncBackend(Protocol):
    """The optional async twins; a backend may define them next to the sync methods."""

    async def aget(self, key: str) -> bytes | None: ...

    async def aset(self, key: str, value: bytes, ttl: float) -> None: ...

    async def adelete(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AtomicAdd(Protocol):
    """The optional atomic insert: store only when ``key`` is absent, in one step that
    no other thread or process can interleave with. A separate protocol (not part of
    `Backend`), so that plugins without it still pass ``isinstance(b, Backend)``."""

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` for ``ttl`` seconds if ``key`` is absent; ``True`` when
        stored, ``False`` when another value is there."""


@contextlib.contextmanager
def checking_options(backend: str) -> Iterator[None]:
    """Around a backend's checks of its options: an option of the wrong type that a
    check trips over (``"10" < 1``, ``Path(3)``) is a `ConfigurationError` too, like
    an option of the wrong value, naming the backend."""
    try:
        yield
    except (TypeError, AttributeError) as exc:
        raise ConfigurationError(f"bad option for {backend}: {exc}") from exc
