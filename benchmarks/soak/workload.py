"""The soak's workload: decorated functions over L1/L2 memory and one shared tier.

Four kinds of call, chosen at random by threads and asyncio tasks together:

- ``ask(prompt, tenant)``: sync, prompts of all four policies, 100 tenants (namespaces);
- ``aask(prompt, tenant)``: the same, async;
- ``converse(messages, tenant)``: multi-turn conversations; after each answer the caller
  appends it and the next user turn to the *same* list (so a deferred call that read the
  live list would answer another conversation);
- streamed OpenAI chat completions (sync and async) against the local OpenAI-compatible
  server, replayed from the cache as streams.

Each answer is checked by the `Oracle`; a call that raises counts as failed, one slower than
`slow_after` as slow.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from typing import Any

from llm_middleware import MultiLevelCache, cache_by_intent, determine_cache_policy, load_backend

from .oracle import Counts, Oracle, digest

__all__ = ["CALL_S", "Workload"]

CALL_S = 0.002
"""What one simulated LLM call takes."""

TENANTS = [f"tenant-{i}" for i in range(100)]
TOPICS = [f"topic {i}" for i in range(40)]
PROMPTS = (
    "What is the latest news about {} today?",  # NEVER
    "Explain the definition of {}.",  # LONG
    "Write a Python function that sorts {}.",  # MEDIUM
    "Give me three fun facts about {}.",  # SHORT
)
OPENAI_TENANTS = 5


def _tenant(arguments: Mapping[str, Any]) -> str:
    return str(arguments["tenant"])


def _ttl(prompt: str) -> float:
    return float(determine_cache_policy(prompt).ttl)


_ORACLES: dict[str, Oracle] = {}


def ask(prompt: str, tenant: str, soak: str) -> str:
    """The sync LLM stand-in: a traceable answer for exactly this prompt and tenant."""
    time.sleep(CALL_S)
    return _ORACLES[soak].answer("ask", tenant, prompt, _ttl(prompt))


async def aask(prompt: str, tenant: str, soak: str) -> str:
    """The async LLM stand-in."""
    await asyncio.sleep(CALL_S)
    return _ORACLES[soak].answer("aask", tenant, prompt, _ttl(prompt))


def converse(messages: list[dict[str, str]], tenant: str, soak: str) -> str:
    """A chat turn: its answer names the whole conversation as the function saw it."""
    time.sleep(CALL_S)
    return _ORACLES[soak].answer("converse", tenant, messages, _ttl(messages[-1]["content"]))


class Workload:
    """The decorated functions of one soak, over ``L1``/``L2`` memory and ``shared``."""

    def __init__(
        self, name: str, shared_url: str, counts: Counts, *, secret: str | None, openai_url: str
    ) -> None:
        from llm_middleware import backend_from_url

        self.name = name
        self.counts = counts
        self.oracle = _ORACLES[name] = Oracle(counts)
        self.cache = MultiLevelCache(
            [
                load_backend("memory", maxsize=32),
                load_backend("memory", maxsize=256),
                backend_from_url(shared_url),
            ],
            names=["L1", "L2", "L3"],
            secret=secret,
        )
        options: dict[str, Any] = {
            "cache": self.cache,
            "namespace": _tenant,
            "ignore": ("tenant", "soak"),
        }
        self.ask = cache_by_intent(**options)(ask)
        self.aask = cache_by_intent(**options)(aask)
        self.converse = cache_by_intent(**options)(converse)
        self.openai = _OpenAICalls(self.cache, openai_url, counts)

    def call_sync(self, rng: random.Random, conversation: list[dict[str, str]]) -> None:
        """One sync call of a random kind, checked."""
        tenant = rng.choice(TENANTS[: rng.choice((5, 100))])  # some tenants hot, all seen
        pick = rng.random()
        if pick < 0.5:
            prompt = rng.choice(PROMPTS).format(rng.choice(TOPICS[:10]))
            self.oracle.check("ask", tenant, digest(prompt), self.ask(prompt, tenant, self.name))
        elif pick < 0.8:
            expected = digest(conversation)
            answer = self.converse(conversation, tenant, self.name)
            self.oracle.check("converse", tenant, expected, answer)
            self._next_turn(rng, conversation, answer)
        else:
            self.openai.call(rng)

    async def call_async(self, rng: random.Random) -> None:
        """One async call of a random kind, checked."""
        tenant = rng.choice(TENANTS[: rng.choice((5, 100))])
        if rng.random() < 0.8:
            prompt = rng.choice(PROMPTS).format(rng.choice(TOPICS[:10]))
            answer = await self.aask(prompt, tenant, self.name)
            self.oracle.check("aask", tenant, digest(prompt), answer)
        else:
            await self.openai.acall(rng)

    @staticmethod
    def _next_turn(rng: random.Random, conversation: list[dict[str, str]], answer: str) -> None:
        """Mutate the caller's list in place, as a chat loop does; start over after a few
        turns (with the same opening, so conversations repeat and hit)."""
        if len(conversation) >= 5:
            del conversation[1:]
            return
        conversation.append({"role": "assistant", "content": answer})
        topic = rng.choice(TOPICS[:5])
        conversation.append({"role": "user", "content": f"Explain more about {topic}."})

    def close(self) -> None:
        self.openai.close()
        self.cache.close()


class _OpenAICalls:
    """Streamed chat completions through `wrap_openai`, sync and async, a few namespaces."""

    def __init__(self, cache: MultiLevelCache, base_url: str, counts: Counts) -> None:
        import openai

        from llm_middleware.openai import wrap_openai

        self.counts = counts
        self.sync = [
            wrap_openai(
                openai.OpenAI(base_url=base_url, api_key="soak", max_retries=0),
                cache=cache,
                namespace=f"openai-{i}",
            )
            for i in range(OPENAI_TENANTS)
        ]
        self.async_ = [
            wrap_openai(
                openai.AsyncOpenAI(base_url=base_url, api_key="soak", max_retries=0),
                cache=cache,
                namespace=f"openai-{i}",
            )
            for i in range(OPENAI_TENANTS)
        ]

    @staticmethod
    def _request(rng: random.Random) -> tuple[int, str, dict[str, Any]]:
        tenant = rng.randrange(OPENAI_TENANTS)
        prompt = f"[openai-{tenant}] " + rng.choice(PROMPTS).format(rng.choice(TOPICS[:5]))
        messages = [{"role": "user", "content": prompt}]
        return tenant, prompt, {"model": "soak-model", "messages": messages, "stream": True}

    def _judge(self, prompt: str, text: str) -> None:
        if not (text.startswith("answer #") and text.endswith(f" to: {prompt}")):
            self.counts.bump("wrong")
            self.counts.note(f"openai stream for {prompt!r} gave {text[:120]!r}")

    def call(self, rng: random.Random) -> None:
        tenant, prompt, request = self._request(rng)
        stream = self.sync[tenant].chat.completions.create(**request)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        self._judge(prompt, text)

    async def acall(self, rng: random.Random) -> None:
        tenant, prompt, request = self._request(rng)
        stream = await self.async_[tenant].chat.completions.create(**request)
        text = ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        self._judge(prompt, text)

    async def aclose(self) -> None:
        for client in self.async_:
            await client.close()

    def close(self) -> None:
        for client in self.sync:
            client.close()
