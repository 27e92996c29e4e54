"""Exceptions Python treats specially reach the caller unchanged, whatever path the call
takes: a miss, ``bypass()``, a NEVER prompt -- sync and async."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import pytest

from llm_middleware import MultiLevelCache, bypass, cache_by_intent

from .support.llm import Counter

SPECIAL: list[Callable[[], BaseException]] = [
    lambda: StopIteration("the end"),
    lambda: StopAsyncIteration("the async end"),
    lambda: GeneratorExit("closed"),
    lambda: KeyboardInterrupt("ctrl-c"),
    lambda: SystemExit(3),
    lambda: asyncio.CancelledError("cancelled"),
]
PATHS = {
    "miss": ("Summarize the report", contextlib.nullcontext),
    "bypass": ("Summarize the report", bypass),
    "never": ("What is the weather today?", contextlib.nullcontext),
}


def _ids(make: Callable[[], BaseException]) -> str:
    return type(make()).__name__


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("make", SPECIAL, ids=_ids)
def test_stop_iteration_and_other_special_exceptions_propagate_unchanged(
    cache: MultiLevelCache, make: Callable[[], BaseException], path: str
) -> None:
    """The very exception the function raised -- not ``RuntimeError("generator raised
    StopIteration")`` -- with its own type, and nothing stored."""
    prompt, block = PATHS[path]
    raised = make()

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        raise raised

    with block(), pytest.raises(BaseException) as caught:  # noqa: PT011 - identity below
        chat(prompt)
    assert caught.value is raised and type(caught.value) is type(raised)
    assert caught.value.__context__ is None


def _async_raisable(make: Callable[[], BaseException]) -> bool:
    # a coroutine turns its own StopIteration into RuntimeError (PEP 479): no async
    # function can raise it, cached or not; KeyboardInterrupt and SystemExit leave
    # the event loop itself (asyncio's rule), the sync test covers their path
    return not isinstance(make(), (StopIteration, KeyboardInterrupt, SystemExit))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("make", [m for m in SPECIAL if _async_raisable(m)], ids=_ids)
def test_special_exceptions_propagate_unchanged_from_async_functions(
    cache: MultiLevelCache, make: Callable[[], BaseException], path: str
) -> None:
    prompt, block = PATHS[path]
    raised = make()

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        raise raised

    async def scenario() -> BaseException:
        with block():
            try:
                await chat(prompt)
            except BaseException as exc:
                return exc
        raise AssertionError("nothing raised")

    assert asyncio.run(scenario()) is raised


def test_a_generator_function_raising_stop_iteration_is_not_cached(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """StopIteration on a miss closes no flight: the next identical call calls again."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> Iterator[str]:
        llm(prompt)
        raise StopIteration

    for _ in range(2):
        with pytest.raises(StopIteration):
            chat("Summarize the report")
    assert llm.calls == 2
