"""Background refreshes of stale entries (``stale_ttl``): one at a time per key.

A stale hit answers at once and yields a `Revalidate` operation; the sync driver runs the
refresh in a thread, the async driver in a task. `Revalidations` keeps the keys being
refreshed, so concurrent stale hits on one key start one refresh.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable

from ._io import Flow, Op, run_async, run_sync

__all__ = ["Revalidate", "Revalidations"]


class Revalidate(Op):
    """Start one background refresh of a stale entry (a thread, or an asyncio task)."""

    __slots__ = ("flow", "key", "running")

    def __init__(self, running: Revalidations, key: str, flow: Callable[[], Flow[None]]) -> None:
        self.running, self.key, self.flow = running, key, flow

    def run(self) -> None:
        if self.running.claim(self.key):
            context = contextvars.copy_context()
            job = self.running.finishing(self.key, lambda: run_sync(self.flow()))
            threading.Thread(target=context.run, args=(job,), daemon=True).start()

    async def arun(self) -> None:
        if self.running.claim(self.key):
            task = asyncio.ensure_future(run_async(self.flow()))
            self.running.keep(self.key, task)


class Revalidations:
    """The keys being refreshed in the background: one refresh per key at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[str] = set()
        self._tasks: set[asyncio.Future[None]] = set()

    def claim(self, key: str) -> bool:
        with self._lock:
            if key in self._keys:
                return False
            self._keys.add(key)
            return True

    def done(self, key: str) -> None:
        with self._lock:
            self._keys.discard(key)

    def finishing(self, key: str, job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            finally:
                self.done(key)

        return run

    def keep(self, key: str, task: asyncio.Future[None]) -> None:
        self._tasks.add(task)  # a reference, or the task may vanish mid-flight

        def finished(_: object) -> None:
            self._tasks.discard(task)
            self.done(key)

        task.add_done_callback(finished)
