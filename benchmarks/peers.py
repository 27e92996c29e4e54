"""Peer adapters: the same memory hit, ``chat(PROMPT)`` answered from an in-process cache,
through each peer library's documented caching API.

Each adapter returns a `Peer` (a primed runner: the first call stored the answer) or raises;
`build_peers` turns an import or set-up failure into ``unavailable: <reason>`` so a peer that
cannot be installed is reported, never hidden. Install them with the ``bench`` extra.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._timing import Runner, async_runner, sync_runner
from .workloads import ANSWER, MODEL, PROMPT

__all__ = ["Peer", "PeerStatus", "build_peers"]


@dataclass
class Peer:
    """A peer ready to time. ``is_async``: compared with the library's async hit.
    ``in_target``: whether the peer-speed target applies (false for reference-only rows)."""

    name: str
    run: Runner
    is_async: bool
    how: str
    in_target: bool = True


@dataclass
class PeerStatus:
    """A peer's outcome: ``peer`` is set when it could be built, else ``reason`` says why."""

    name: str
    distribution: str
    version: str | None
    peer: Peer | None = None
    reason: str | None = None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _dogpile(loop: asyncio.AbstractEventLoop, workdir: Path) -> list[Peer]:
    from dogpile.cache import make_region

    region = make_region().configure("dogpile.cache.memory", expiration_time=86400)

    @region.cache_on_arguments()
    def chat(prompt: str, model: str = MODEL) -> str:
        return ANSWER

    chat(PROMPT)
    how = "region.cache_on_arguments(), dogpile.cache.memory backend"
    return [Peer("dogpile.cache", sync_runner(chat, PROMPT), False, how)]


def _cashews(loop: asyncio.AbstractEventLoop, workdir: Path) -> list[Peer]:
    from cashews import Cache

    cache = Cache()
    cache.setup("mem://")

    @cache(ttl="24h")
    async def chat(prompt: str, model: str = MODEL) -> str:
        return ANSWER

    loop.run_until_complete(chat(PROMPT))
    return [Peer("cashews", async_runner(loop, chat, PROMPT), True, '@cache(ttl="24h"), mem://')]


def _aiocache(loop: asyncio.AbstractEventLoop, workdir: Path) -> list[Peer]:
    from aiocache import Cache, cached  # type: ignore[import-untyped]

    @cached(ttl=86400, cache=Cache.MEMORY)  # type: ignore[untyped-decorator]
    async def chat(prompt: str, model: str = MODEL) -> str:
        return ANSWER

    loop.run_until_complete(chat(PROMPT))
    how = "@cached(ttl=86400, cache=Cache.MEMORY)"
    return [Peer("aiocache", async_runner(loop, chat, PROMPT), True, how)]


def _gptcache(loop: asyncio.AbstractEventLoop, workdir: Path) -> list[Peer]:
    from gptcache import Cache  # type: ignore[import-untyped]
    from gptcache.adapter.api import get, put  # type: ignore[import-untyped]
    from gptcache.manager import get_data_manager  # type: ignore[import-untyped]
    from gptcache.processor.pre import get_prompt  # type: ignore[import-untyped]

    cache = Cache()  # exact match: string "embedding", map data manager, ExactMatchEvaluation
    cache.init(
        pre_embedding_func=get_prompt,
        data_manager=get_data_manager(data_path=str(workdir / "gptcache_map.txt")),
    )

    def chat(prompt: str, model: str = MODEL) -> str:
        text = f"{model}\n{prompt}"  # the model is part of the key, as for the others
        answer = get(text, cache_obj=cache)
        if answer is None:
            answer = ANSWER
            put(text, answer, cache_obj=cache)
        return str(answer)

    chat(PROMPT)
    how = "adapter.api get/put, exact match (map data manager)"
    return [Peer("GPTCache", sync_runner(chat, PROMPT), False, how)]


def _langchain(loop: asyncio.AbstractEventLoop, workdir: Path) -> list[Peer]:
    from langchain_core.caches import InMemoryCache
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.outputs import Generation

    model = FakeListChatModel(responses=[ANSWER], cache=InMemoryCache())
    model.invoke(PROMPT)
    peers = [
        Peer(
            "LangChain InMemoryCache",
            sync_runner(model.invoke, PROMPT),
            False,
            "chat model with cache=InMemoryCache(), .invoke(prompt)",
        )
    ]
    bare = InMemoryCache()
    llm_string = str(sorted({"model": MODEL, "_type": "chat"}.items()))

    def lookup_only(prompt: str, model: str = MODEL) -> str:
        found = bare.lookup(prompt, llm_string)
        if found is None:
            bare.update(prompt, llm_string, [Generation(text=ANSWER)])
            return ANSWER
        return found[0].text

    lookup_only(PROMPT)
    peers.append(
        Peer(
            "LangChain InMemoryCache.lookup (bare)",
            sync_runner(lookup_only, PROMPT),
            False,
            "a dict get of a caller-built (prompt, llm_string) key: no key hashing, no "
            "model run; for reference only, not a cached-function API",
            in_target=False,
        )
    )
    return peers


_ADAPTERS: list[tuple[str, str, Callable[[asyncio.AbstractEventLoop, Path], list[Peer]]]] = [
    ("dogpile.cache", "dogpile.cache", _dogpile),
    ("cashews", "cashews", _cashews),
    ("aiocache", "aiocache", _aiocache),
    ("GPTCache", "gptcache", _gptcache),
    ("LangChain InMemoryCache", "langchain-core", _langchain),
]


def build_peers(loop: asyncio.AbstractEventLoop, workdir: Path) -> list[PeerStatus]:
    """Every peer, built and primed, or the reason it is unavailable."""
    statuses = []
    for name, distribution, adapter in _ADAPTERS:
        version = _version(distribution)
        try:
            peers = adapter(loop, workdir)
        except ImportError as exc:
            reason = f"not installed ({exc.name or exc}); pip install '.[bench]'"
            statuses.append(PeerStatus(name, distribution, version, reason=reason))
            continue
        except Exception as exc:  # a peer that breaks is reported, not fatal
            reason = f"{type(exc).__name__}: {exc}"
            statuses.append(PeerStatus(name, distribution, version, reason=reason))
            continue
        statuses.extend(PeerStatus(p.name, distribution, version, peer=p) for p in peers)
    return statuses
