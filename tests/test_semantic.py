"""Semantic matching: levels, gates and isolation, with a deterministic test embedder."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

pytest.importorskip("numpy")

from llm_middleware import (
    CachePolicy,
    ConfigurationError,
    MultiLevelCache,
    SemanticMatch,
    bypass,
    cache_by_intent,
    configure,
    refresh,
)
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.backends.sqlite import SQLiteBackend
from llm_middleware.semantic.normal import normal_form
from llm_middleware.testing import FakeClock

from .support.llm import Counter
from .support.semantic_support import WordsEmbedder, table

FRANCE = "Explain the capital of France"
FRANCE_2 = "Explain the capital city of France"


def semantic(**options: Any) -> SemanticMatch:
    return SemanticMatch(embedder=WordsEmbedder(), calibration=table(0.85), **options)


def results(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "cache.result"]


def test_off_unless_asked(cache: MultiLevelCache, llm: Counter) -> None:
    """Without ``semantic=``, only identical calls share an answer."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    chat(FRANCE)
    chat(FRANCE_2)
    chat("explain the capital of france?")
    assert llm.calls == 3


def test_semantic_hit_is_traced_counted_and_promoted(cache: MultiLevelCache, llm: Counter) -> None:
    """A close prompt gets the stored answer (tier ``semantic``, with its similarity);
    the next identical call is an exact hit of tier 1."""
    match = semantic()

    @cache_by_intent(cache=cache, semantic=match)
    def chat(prompt: str) -> str:
        return llm(prompt)

    first = chat(FRANCE)
    with capture_logs() as logs:
        assert chat(FRANCE_2) == first
    lookup = next(e for e in logs if e["event"] == "cache.lookup" and e["tier"] == "semantic")
    assert lookup["hit"] is True and lookup["similarity"] >= 0.85
    assert lookup["matched"].startswith("llmmw")
    (result,) = results(logs)
    assert result["outcome"] == "hit" and result["tier"] == "semantic"
    assert result["similarity"] == lookup["similarity"]
    embedded = len(match.embedder.embedded)  # type: ignore[attr-defined]
    with capture_logs() as logs:
        assert chat(FRANCE_2) == first
    assert results(logs)[0]["tier"] == "L1"
    assert len(match.embedder.embedded) == embedded  # type: ignore[attr-defined]
    assert llm.calls == 1
    assert chat.cache_info()["hits"] == {"semantic": 1, "L1": 1}


def test_normalized_level_is_conservative(cache: MultiLevelCache, llm: Counter) -> None:
    """Case, width, spacing and trailing ``?!.`` are ignored; symbols inside are not
    (the semantic level is held out of reach here)."""
    exact_only = SemanticMatch(embedder=WordsEmbedder(), calibration=table(1.5))
    chat = cache_by_intent(cache=cache, semantic=exact_only)(lambda prompt: llm(prompt))
    stored = chat("Explain  2+2")
    with capture_logs() as logs:
        assert chat("EXPLAIN \uff12+\uff12 ?!") == stored  # full-width digits
    assert results(logs)[0]["tier"] == "normalized"
    chat("Explain 2-2")
    assert llm.calls == 2
    assert normal_form(" What is\tC++ ?? ") == "what is c++"
    assert normal_form("2+2") != normal_form("2-2")


def test_dissimilar_prompts_miss(cache: MultiLevelCache, llm: Counter) -> None:
    """Below the calibrated threshold the call goes to the LLM (a traced near miss)."""
    chat = cache_by_intent(cache=cache, semantic=semantic())(lambda prompt: llm(prompt))
    chat(FRANCE)
    with capture_logs() as logs:
        chat("Explain how to bake bread")
    lookup = next(e for e in logs if e["event"] == "cache.lookup" and e["tier"] == "semantic")
    assert lookup["hit"] is False and lookup["similarity"] < 0.85 and "matched" not in lookup
    assert llm.calls == 2


def test_only_allowed_policies(cache: MultiLevelCache, llm: Counter) -> None:
    """Default LONG only: a SHORT prompt is never matched; allowing SHORT matches it;
    NEVER cannot be allowed."""
    chat = cache_by_intent(cache=cache, semantic=semantic())(lambda prompt: llm(prompt))
    chat("Tell me about the capital of France")
    chat("Tell me about the capital city of France")
    assert llm.calls == 2
    wide = semantic(policies=(CachePolicy.SHORT, CachePolicy.LONG))

    @cache_by_intent(cache=cache, semantic=wide)
    def other(prompt: str) -> str:
        return llm(prompt)

    other("Tell me about the capital of France")
    other("Tell me about the capital city of France")
    assert llm.calls == 3
    with pytest.raises(ConfigurationError, match="NEVER"):
        semantic(policies=(CachePolicy.NEVER,))


def test_bypass_and_refresh_skip_it(cache: MultiLevelCache, llm: Counter) -> None:
    """``bypass()`` and ``refresh()`` never serve a match; a refreshed answer is indexed."""
    chat = cache_by_intent(cache=cache, semantic=semantic())(lambda prompt: llm(prompt))
    chat(FRANCE)
    with bypass():
        chat(FRANCE_2)
    with refresh():
        chat(FRANCE_2)
    assert llm.calls == 3
    assert chat("Explain the capital city of France please") == f"answer #3 to {FRANCE_2}"


def test_served_only_within_its_own_lifetime(llm: Counter) -> None:
    """A matched answer is served only while it lives; its copy under the new key
    expires with it."""
    clock = FakeClock(1000.0)
    cache = MultiLevelCache([MemoryBackend(maxsize=100, timer=clock)], timer=clock)
    chat = cache_by_intent(cache=cache, semantic=semantic())(lambda prompt: llm(prompt))
    chat(FRANCE)  # LONG: 86,400 s
    clock.advance(86_000)
    chat(FRANCE_2)  # served, copied for the remaining 400 s
    assert llm.calls == 1
    clock.advance(401)
    assert chat(FRANCE_2) == f"answer #2 to {FRANCE_2}"  # both expired: called again
    assert chat("Explain the capital city of France please") == f"answer #2 to {FRANCE_2}"


def test_only_the_intent_text_is_fuzzy(cache: MultiLevelCache, llm: Counter) -> None:
    """Another model, namespace or earlier turn never shares an answer."""
    match = semantic()

    @cache_by_intent(cache=cache, semantic=match, namespace=lambda a: a["user"])
    def chat(prompt: str, model: str, user: str) -> str:
        return llm(f"{prompt}/{model}/{user}")

    chat(FRANCE, "m1", "ann")
    chat(FRANCE_2, "m2", "ann")
    chat(FRANCE_2, "m1", "bob")
    assert llm.calls == 3
    chat(FRANCE_2, "m1", "ann")
    assert llm.calls == 3

    @cache_by_intent(cache=cache, semantic=match)
    def converse(messages: list[dict[str, str]]) -> str:
        return llm(messages[-1]["content"])

    def turns(earlier: str, last: str) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": earlier},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": last},
        ]

    converse(turns("Hello there", FRANCE))
    converse(turns("Good morning", FRANCE_2))
    assert llm.calls == 5
    converse(turns("Hello there", FRANCE_2))
    assert llm.calls == 5


def test_shadow_mode_serves_fresh_and_judges(cache: MultiLevelCache, llm: Counter) -> None:
    """Shadow: the match is found but the LLM is called; the result says whether the
    match would have been right, and stats count it."""
    chat = cache_by_intent(cache=cache, semantic=semantic(shadow=True))(
        lambda prompt: "Paris" if "France" in prompt else llm(prompt)
    )
    chat(FRANCE)
    with capture_logs() as logs:
        assert chat(FRANCE_2) == "Paris"
    (result,) = results(logs)
    assert result["outcome"] == "miss" and result["shadow_correct"] is True
    assert result["shadow_match"].startswith("llmmw")
    info = chat.cache_info()
    assert info["shadow"] == {"matches": 1, "correct": 1} and info["misses"] == 2
    judged = semantic(shadow=True, judge=lambda stored, fresh: False)

    @cache_by_intent(cache=cache, semantic=judged)
    def other(prompt: str) -> str:
        return "Paris"

    other(FRANCE)
    other(FRANCE_2)
    assert other.cache_info()["shadow"] == {"matches": 1, "correct": 0}


def test_configure_sets_the_default(cache: MultiLevelCache, llm: Counter) -> None:
    """``configure(semantic=...)`` applies to functions without their own setting;
    ``semantic=False`` on a function opts it out."""
    configure(cache=cache, semantic=semantic())
    chat = cache_by_intent(lambda prompt: llm(prompt))

    @cache_by_intent(semantic=False)
    def plain(prompt: str) -> str:
        return llm(prompt)

    chat(FRANCE)
    chat(FRANCE_2)
    plain(FRANCE)
    plain(FRANCE_2)
    assert llm.calls == 3
    with pytest.raises(ConfigurationError):
        configure(semantic="yes")  # type: ignore[arg-type]


def test_async_functions(cache: MultiLevelCache, llm: Counter) -> None:
    """Async code embeds in a worker thread and matches alike."""

    @cache_by_intent(cache=cache, semantic=semantic())
    async def chat(prompt: str) -> str:
        return llm(prompt)

    async def main() -> tuple[str, str]:
        return await chat(FRANCE), await chat(FRANCE_2)

    first, second = asyncio.run(main())
    assert first == second and llm.calls == 1


def test_a_second_process_finds_the_match(tmp_path: Path, llm: Counter) -> None:
    """Entries are shared through the last tier: another cache and index over the same
    SQLite file (as in another process) finds the first one's prompt."""
    path = tmp_path / "cache.db"

    def build() -> Any:
        cache = MultiLevelCache([MemoryBackend(maxsize=100), SQLiteBackend(path=path)])
        return cache_by_intent(cache=cache, semantic=semantic())(lambda prompt: llm(prompt))

    first, second = build(), build()
    answer = first(FRANCE)
    assert second(FRANCE_2) == answer and llm.calls == 1


def test_a_bad_shared_partition_is_an_error_not_a_crash(tmp_path: Path, llm: Counter) -> None:
    """A malformed partition in the shared tier is reported and ignored."""
    backend = SQLiteBackend(path=tmp_path / "cache.db")
    cache = MultiLevelCache([backend])
    chat = cache_by_intent(cache=cache, semantic=semantic())(lambda prompt: llm(prompt))
    chat(FRANCE)
    with sqlite3.connect(tmp_path / "cache.db") as db:
        (key,) = [k for (k,) in db.execute("SELECT key FROM llm_cache") if k.endswith(":sem")]
    backend.set(key, b"LMSEM1\n\x00\x00\x00\x02{}", 600)
    with capture_logs() as logs:
        chat(FRANCE_2)
    assert any(e["event"] == "cache.error" and e.get("reason") == "invalid_index" for e in logs)
    assert llm.calls == 1  # the local index still knew it


def test_stats_command_reports_shadow_rates(cache: MultiLevelCache, tmp_path: Path) -> None:
    """``llm-middleware stats`` reads shadow results: would-be hit rate and error rate."""
    import io
    import json

    from llm_middleware.logstats import summarize

    answers = iter(["Paris", "Paris", "Lyon"])
    chat = cache_by_intent(cache=cache, semantic=semantic(shadow=True))(
        lambda prompt: next(answers)
    )
    with capture_logs() as logs:
        chat(FRANCE)
        chat(FRANCE_2)  # would have served "Paris": right
        chat("Explain the capital city of France please")  # would have served: wrong
    lines = b"".join(json.dumps(e).encode() + b"\n" for e in results(logs))
    shadow = summarize(io.BytesIO(lines)).as_dict()["shadow"]
    assert shadow["matches"] == 2 and shadow["correct"] == 1
    assert shadow["would_be_hit_rate"] == pytest.approx(2 / 3)
    assert shadow["would_be_wrong_rate"] == pytest.approx(0.5)


def test_a_failing_embedder_degrades_to_a_plain_miss(llm: Counter) -> None:
    """An embedder that raises (or returns the wrong shape) costs a warning event,
    never the call; exact matching still works."""

    class Broken(WordsEmbedder):
        def embed(self, texts: Any) -> Any:
            raise RuntimeError("model server down")

    class Misshapen(WordsEmbedder):
        def embed(self, texts: Any) -> Any:
            return super().embed(texts)[:, :3]

    for embedder in (Broken(), Misshapen()):
        match = SemanticMatch(embedder=embedder, calibration=table(0.85))
        cache = MultiLevelCache([MemoryBackend(maxsize=10)])
        chat = cache_by_intent(cache=cache, semantic=match)(lambda prompt: llm(prompt))
        with capture_logs() as logs:
            chat(FRANCE)
            chat(FRANCE_2)
            chat(FRANCE)
        errors = [e for e in logs if e["event"] == "cache.error"]
        assert errors and all(e["tier"] == "semantic" for e in errors)
        assert [e["outcome"] for e in results(logs)][-1] == "hit"
    assert llm.calls == 4  # per embedder: FRANCE and FRANCE_2 called; FRANCE again a hit
