"""`Counter`: the stand-in LLM of the tests (the ``llm`` fixture of ``tests/conftest.py``)."""

from __future__ import annotations


class Counter:
    """A stand-in LLM: answers with a numbered string and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, prompt: str) -> str:
        self.calls += 1
        return f"answer #{self.calls} to {prompt}"
