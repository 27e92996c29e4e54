"""The ``openai_server`` pytest fixture: a started :class:`FakeOpenAIServer` per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_openai import FakeOpenAIServer


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A running fake OpenAI server, stopped after the test."""
    with FakeOpenAIServer() as server:
        yield server
