"""`Counter`: the stand-in LLM of the tests (the ``llm`` fixture of ``tests/conftest.py``)."""

from __future__ import annotations

import asyncio
import threading
import time


class Counter:
    """A stand-in LLM: answers ``"answer #<n> to <prompt>"``, numbering its calls from 1.

    ``calls`` counts the calls and ``prompts`` keeps what each one was asked, in order.
    A call is counted as it starts, before its ``delay`` (an upstream call in flight)
    has passed: a call abandoned or cancelled meanwhile still counts. Calls from many
    threads at once are each counted and numbered once. ``acall`` is the async twin.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.prompts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, prompt: str, *, delay: float = 0.0) -> str:
        """The answer, after ``delay`` seconds."""
        answer = self._count(prompt)
        if delay:
            time.sleep(delay)
        return answer

    async def acall(self, prompt: str, *, delay: float = 0.0) -> str:
        """The answer, after ``delay`` seconds of the event loop (0: one turn of it)."""
        answer = self._count(prompt)
        await asyncio.sleep(delay)
        return answer

    def _count(self, prompt: str) -> str:
        with self._lock:
            self.calls += 1
            self.prompts.append(prompt)
            return f"answer #{self.calls} to {prompt}"
