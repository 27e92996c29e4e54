"""The whole decorator as a state machine (hypothesis): random calls with argument objects
that the caller changes after each call, concurrent duplicates, garbage planted in the
tiers, and a clock that moves.

Invariant: every answer equals what the uncached function returns for the arguments'
content at call time, or an answer the function produced for exactly that content,
within its lifetime (plus the stale grace window, where the functions serve stale
answers: a machine draws whether they do, so that the other half of the runs take the
routes a stale answer turns off -- the remembered decision and tier 1 read inline).
The function records the content it saw with each answer it produced, so an answer
computed from other content -- a refresh or a shared call reading changed arguments, an
entry of another key -- is caught.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
import time
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import structlog
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from structlog.testing import LogCapture

from llm_middleware import MultiLevelCache, cache_by_intent
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.policy import IntentRules
from llm_middleware.testing import FakeClock

from .support.llm import Counter

PROMPTS = [
    "Explain B-trees",  # LONG
    "Summarize the report",  # SHORT
    "What is the weather today?",  # NEVER
]
STALE = 60.0
Chat = list[dict[str, str]]


def content_of(messages: Chat) -> str:
    return json.dumps(messages, sort_keys=True)


def lifetime(messages: Chat, stale: float) -> float:
    """How long an answer for ``messages`` may be served: its policy's ttl plus the
    ``stale`` grace."""
    ttl = IntentRules.default().classify(messages[-1]["content"]).ttl
    return ttl + stale


GARBAGE = [
    b"",
    b"not an envelope",
    b'{"schema": 1, "type": "str", "value": "planted"}',
    json.dumps(
        {
            "schema": 1,
            "type": "str",
            "policy": "long",
            "created": 1e6,
            "expires": 1e300,
            "duration_ms": 1e308,
            "usage": None,
            "value": "planted",
        }
    ).encode(),
    b"z" + zlib.compress(b'{"schema":1,"value":"' + b"a" * (8 << 20)),
]


class DecoratorMachine(RuleBasedStateMachine):
    """One decorated chat function over two memory tiers on a fake clock."""

    @initialize(stale=st.sampled_from([STALE, 0.0]))
    def setup(self, stale: float) -> None:
        self.stale = stale
        self.clock = FakeClock(1_000_000.0)
        self.tiers = [
            MemoryBackend(maxsize=20, timer=self.clock),
            MemoryBackend(maxsize=200, timer=self.clock),
        ]
        self.tiers[0].max_value_bytes = 64 * 1024  # type: ignore[attr-defined]
        self.cache = MultiLevelCache(self.tiers, timer=self.clock)
        self.produced: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self.guard = threading.Lock()
        self.llm = Counter()
        self.capture = LogCapture()
        structlog.configure(
            processors=[self.capture],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        )
        produced, guard, clock, llm = self.produced, self.guard, self.clock, self.llm

        @cache_by_intent(cache=self.cache, stale_ttl=stale)
        def chat(messages: Chat) -> str:
            seen = content_of(messages)
            with guard:  # the answer and its record at once
                answer = llm(seen)
                produced[seen].append((answer, clock()))
            return answer

        @cache_by_intent(cache=self.cache, stale_ttl=stale)
        async def achat(messages: Chat) -> str:
            await asyncio.sleep(0)
            return str(chat.__wrapped__(messages))  # the same answers, recorded alike

        self.chat, self.achat = chat, achat
        self.conversations: list[Chat] = [
            [{"role": "user", "content": prompt}] for prompt in PROMPTS
        ]
        self.earlier: list[Chat] = []  # contents called before, to come back to
        self.baseline_threads = threading.active_count()

    def teardown(self) -> None:
        self.settle()
        structlog.reset_defaults()

    def settle(self) -> None:
        """Let background refreshes finish (they store what they produced)."""
        deadline = time.monotonic() + 10
        while threading.active_count() > self.baseline_threads:
            assert time.monotonic() < deadline, "a background refresh never finished"
            time.sleep(0.002)

    def check(self, messages: Chat, answer: str) -> None:
        seen = content_of(messages)
        now = self.clock()
        with self.guard:
            valid = [t for a, t in self.produced[seen] if a == answer]
        assert valid, f"{answer!r} was never produced for {seen}"
        assert any(now - t <= lifetime(messages, self.stale) for t in valid), (
            f"{answer!r} outlived itself"
        )

    @rule(which=st.integers(0, len(PROMPTS) - 1), then=st.sampled_from(PROMPTS))
    def call_then_change_the_arguments(self, which: int, then: str) -> None:
        """Call, then go on with the conversation in place (as a chat loop does)."""
        messages = self.conversations[which]
        before = copy.deepcopy(messages)
        answer = self.chat(messages)
        self.check(before, answer)
        self.earlier.append(before)
        messages.append({"role": "assistant", "content": answer[:20]})
        messages.append({"role": "user", "content": then})
        if len(messages) > 7:  # back to an earlier turn: its entries may still be there
            del messages[1:5]
        self.settle()  # what background refreshes stored is what is checked
        self.check(before, self.chat(copy.deepcopy(before)))

    @rule(which=st.integers(0, len(PROMPTS) - 1), then=st.sampled_from(PROMPTS))
    def async_call_then_change_the_arguments(self, which: int, then: str) -> None:
        """The same from async code, where what runs in the background (a refresh)
        runs only once the caller yields: after it changed its arguments."""
        messages = self.conversations[which]
        before = copy.deepcopy(messages)

        async def loop() -> str:
            answer = str(await self.achat(messages))
            messages.append({"role": "assistant", "content": answer[:20]})
            messages.append({"role": "user", "content": then})
            for _ in range(20):  # let background refreshes run and store
                await asyncio.sleep(0.001)
            return answer

        self.check(before, asyncio.run(loop()))
        self.earlier.append(before)
        # what is stored for the content at call time is still an answer to it
        self.check(before, asyncio.run(self.achat(copy.deepcopy(before))))

    @rule(which=st.integers(0, len(PROMPTS) - 1))
    def async_call_again_unchanged(self, which: int) -> None:
        messages = self.conversations[which]
        self.check(copy.deepcopy(messages), asyncio.run(self.achat(messages)))

    @rule(which=st.integers(0, len(PROMPTS) - 1))
    def start_the_conversation_over(self, which: int) -> None:
        """Back to the opening message, in place: its entries may well be there."""
        del self.conversations[which][1:]

    @rule(which=st.integers(0, len(PROMPTS) - 1))
    def call_again_unchanged(self, which: int) -> None:
        messages = self.conversations[which]
        self.check(copy.deepcopy(messages), self.chat(messages))

    @rule(pick=st.integers(0, 10**6))
    def come_back_to_an_earlier_conversation(self, pick: int) -> None:
        """What is stored for an earlier content is an answer to exactly that content."""
        self.settle()  # what background refreshes stored is what is checked
        if self.earlier:  # recent ones first: their entries are the likeliest to live
            messages = copy.deepcopy(self.earlier[-1 - pick % min(len(self.earlier), 3)])
            self.check(copy.deepcopy(messages), self.chat(messages))
            self.check(copy.deepcopy(messages), asyncio.run(self.achat(messages)))

    @rule(which=st.integers(0, len(PROMPTS) - 1), callers=st.integers(2, 4))
    def concurrent_duplicates(self, which: int, callers: int) -> None:
        """Identical calls at once, each caller changing its own copy right after."""
        contents = [copy.deepcopy(self.conversations[which]) for _ in range(callers)]
        before = copy.deepcopy(contents[0])
        barrier = threading.Barrier(callers)

        def one(messages: Chat) -> str:
            barrier.wait(5)
            answer = self.chat(messages)
            messages.append({"role": "user", "content": "and then?"})
            return answer

        with ThreadPoolExecutor(callers) as pool:
            answers = list(pool.map(one, contents))
        for answer in answers:
            self.check(before, answer)

    @rule(slot=st.integers(0, 1), garbage=st.sampled_from(GARBAGE), pick=st.integers(0, 10**6))
    def plant_garbage(self, slot: int, garbage: bytes, pick: int) -> None:
        keys = [e["key"] for e in self.capture.entries if e.get("key")]
        if keys:  # recent keys first: they are the likeliest to be called again
            self.tiers[slot].set(keys[-1 - pick % min(len(keys), 5)], garbage, 3600)

    @rule(seconds=st.sampled_from([301.0, 1.0, 350.0, 3601.0, 86_401.0]))
    def advance_the_clock(self, seconds: float) -> None:
        self.settle()
        self.clock.advance(seconds)

    @invariant()
    def no_error_reached_the_caller(self) -> None:
        errors = [e for e in self.capture.entries if e.get("event") == "cache.error"]
        assert all(e.get("reason") != "revalidate" for e in errors), errors


DecoratorMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, database=None
)
test_the_decorator_as_a_state_machine = DecoratorMachine.TestCase
