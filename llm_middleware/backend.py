"""The `Backend` protocol every tier implements, built-in or plugin."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["AsyncBackend", "Backend"]


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
      async hit in this tier takes the same short path as a sync one.
    - ``shared: bool`` -- whether the tier's contents can be read from outside this
      process (a server, a file, another process). A cache with an ``encryption_key``
      encrypts every entry it writes to a shared tier. A backend that does not say is
      taken as shared; an in-process store sets ``shared = False``.

    Blocking backends are run in a worker thread from async code; a backend that
    can do better defines the async twins of `AsyncBackend`.
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
