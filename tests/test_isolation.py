"""Isolation: with a namespace per user, no user ever receives an answer produced for another."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend

from .support.llm import Counter


def _user(i: int) -> str:
    """100 distinct ids: plain names, case variants of them, and ids that are hashed."""
    return [f"user-{i}", f"User-{i}", f"user {i}", f"usér-{i}@example.com"][i % 4]


USERS = [_user(i) for i in range(100)]
PROMPTS = [
    "Explain TLS certificates",  # LONG: every tier
    "What is my account balance?",  # LONG
    "Write a function that lists my files",  # MEDIUM: two tiers
    "Summarize my inbox",  # SHORT: the first tier only
]
ROUNDS = 3


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Threads switch every microsecond, so concurrent calls interleave finely."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("busy_switching")
def test_users_only_ever_receive_answers_produced_for_them(llm: Counter) -> None:
    """100 users asking the same prompts concurrently each get only their own answers."""
    cache = MultiLevelCache([MemoryBackend(maxsize=1000), MemoryBackend(maxsize=1000)])
    lock = threading.Lock()
    produced_for: dict[str, str] = {}  # each answer (numbered: unique), and whose it is

    # user_id is left out of the key on purpose: the namespace alone keeps users apart.
    @cache_by_intent(cache=cache, namespace=lambda a: a["user_id"], ignore=("user_id",))
    def chat(prompt: str, user_id: str) -> str:
        with lock:
            answer = llm(f"{prompt} (for {user_id!r})")
            produced_for[answer] = user_id
        return answer

    jobs = [(user, prompt) for user in USERS for prompt in PROMPTS] * ROUNDS
    random.Random(20240611).shuffle(jobs)

    def ask(job: tuple[str, str]) -> tuple[str, str, str]:
        user, prompt = job
        return user, prompt, chat(prompt, user_id=user)

    with ThreadPoolExecutor(max_workers=16) as pool:
        received = list(pool.map(ask, jobs))

    assert len(received) == len(USERS) * len(PROMPTS) * ROUNDS
    for user, prompt, answer in received:
        assert produced_for[answer] == user, (user, answer)
        assert answer.endswith(f" to {prompt} (for {user!r})")
    upstream_calls = llm.calls
    assert len(produced_for) == upstream_calls
    assert upstream_calls >= len(USERS) * len(PROMPTS)  # nobody borrowed another's answer

    # Every answer is stored by now: asking again is served from the cache, still per user.
    for user in USERS:
        for prompt in PROMPTS:
            answer = chat(prompt, user_id=user)
            assert produced_for[answer] == user
    assert llm.calls == upstream_calls
    assert cache.stats()["hits"]


def test_the_same_user_in_two_processes_shares_but_users_do_not(llm: Counter) -> None:
    """Over a shared tier, a user's answer reaches that user's other process, nobody else."""
    shared = MemoryBackend(maxsize=1000)
    produced_for: dict[str, str] = {}  # each answer (numbered: unique), and whose it is

    def process() -> MultiLevelCache:
        return MultiLevelCache([MemoryBackend(maxsize=100), shared])

    def make_chat(cache: MultiLevelCache) -> Callable[..., str]:
        @cache_by_intent(cache=cache, namespace=lambda a: a["user_id"], ignore=("user_id",))
        def chat(prompt: str, user_id: str) -> str:
            answer = llm(f"{prompt} (for {user_id!r})")
            produced_for[answer] = user_id
            return answer

        return chat

    first, second = make_chat(process()), make_chat(process())
    for user in USERS:
        mine = first("Explain TLS certificates", user_id=user)
        assert second("Explain TLS certificates", user_id=user) == mine
        assert produced_for[mine] == user
    assert llm.calls == len(USERS)
