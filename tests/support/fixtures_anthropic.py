"""The ``anthropic_server`` pytest fixture: a started :class:`FakeAnthropicServer` per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_anthropic import FakeAnthropicServer


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropicServer]:
    """A running fake Anthropic server, stopped after the test."""
    with FakeAnthropicServer() as server:
        yield server
