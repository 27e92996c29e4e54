"""Verified semantic matching in the call flow: candidates judged by the LLM's fresh
answer, learnt per entry (shared tiers too), counted apart; and its benchmark."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

pytest.importorskip("numpy")

from llm_middleware import (
    ConfigurationError,
    MultiLevelCache,
    SemanticMatch,
    cache_by_intent,
)
from llm_middleware.backends.sqlite import SQLiteBackend
from llm_middleware.logstats import summarize
from llm_middleware.semantic.shared import decode_partition
from llm_middleware.semantic.verify import MISS, Observation, observed

from .support.llm import Counter
from .support.semantic_support import PAIRS, WordsEmbedder, table, write_pairs

FRANCE = "Explain the capital of France"
FRANCE_2 = "Explain the capital city of France"
FRANCE_3 = "Explain the capital city of France please"


def verified(**options: Any) -> SemanticMatch:
    return SemanticMatch(0.02, embedder=WordsEmbedder(), calibration=table(0.85), **options)


def results(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "cache.result"]


def test_an_unproven_match_is_verified_counted_apart_and_learnt(
    cache: MultiLevelCache, llm: Counter
) -> None:
    """Nothing is known yet: the LLM answers, the judge compares, the result says
    ``verify``, and stats count the call apart (and among the misses)."""
    match = verified(verify=True)

    @cache_by_intent(cache=cache, semantic=match)
    def chat(prompt: str) -> str:
        llm(prompt)  # counted; the answer is one a real LLM gives to every phrasing
        return "Paris" if "France" in prompt else "?"

    chat(FRANCE)
    with capture_logs() as logs:
        assert chat(FRANCE_2) == "Paris"
    (result,) = results(logs)
    assert result["outcome"] == "verify" and result["verify_correct"] is True
    assert result["verify_match"].startswith("llmmw") and result["similarity"] > 0.5
    info = chat.cache_info()
    assert info["verify"] == {"calls": 1, "correct": 1} and info["misses"] == 2
    assert llm.prompts == [FRANCE, FRANCE_2]
    assert sum(seen for seen, _ in match.verifier.evidence().values()) == 1  # type: ignore[union-attr]


def test_a_wrong_match_is_refused_afterwards(cache: MultiLevelCache) -> None:
    """A verification that finds another answer teaches the entry: a candidate no more
    similar to it is a plain miss, not verified again."""
    answers = iter(["Paris", "Lyon"])
    match = verified(verify="exact")
    chat = cache_by_intent(cache=cache, semantic=match)(lambda prompt: next(answers))
    chat(FRANCE_3)
    with capture_logs() as logs:
        chat(FRANCE)  # nearest is FRANCE_3's entry; "Lyon" != "Paris"
    (result,) = results(logs)
    assert result["outcome"] == "verify" and result["verify_correct"] is False
    name, _ = _partitions(match)
    learnt = observed(match.index.observations(name, result["verify_match"]))
    assert learnt == (Observation(pytest.approx(result["similarity"], abs=1e-4), False),)
    assert match.verifier is not None
    for similarity in (result["similarity"] - 0.05, result["similarity"]):
        decision = match.verifier.decide(learnt, similarity)
        assert decision.action == MISS and decision.bucket == "refused"


def test_a_band_proven_right_serves_a_new_entry(cache: MultiLevelCache, llm: Counter) -> None:
    """Evidence pooled across entries lets an entry that has seen nothing serve,
    once its similarity band has shown the bound."""
    match = verified(verify=True)
    verifier = match.verifier
    assert verifier is not None
    for band in range(50):
        for _ in range(400):
            verifier.learn((), (band + 0.5) / 50, True)

    @cache_by_intent(cache=cache, semantic=match)
    def chat(prompt: str) -> str:
        return llm(prompt)

    chat(FRANCE)
    served, outcomes = 0, []
    for i in range(20):  # a few are explored (verified) rather than served
        with capture_logs() as logs:
            got = chat(f"{FRANCE_2} number {i}")
        (result,) = results(logs)
        outcomes.append((result["outcome"], result.get("verify_bucket")))
        if result["outcome"] == "hit":
            assert result["tier"] == "semantic"  # a stored answer to an earlier prompt
            assert got in {f"answer #{n} to {p}" for n, p in enumerate(llm.prompts, 1)}
            served += 1
    assert served >= 15, outcomes


def test_a_pluggable_judge_gets_the_answer_texts(cache: MultiLevelCache) -> None:
    seen: list[tuple[str, str]] = []

    def judge(stored: str, fresh: str) -> bool:
        seen.append((stored, fresh))
        return stored.lower() == fresh.lower()

    answers = iter(["PARIS", "paris"])
    chat = cache_by_intent(cache=cache, semantic=verified(verify=judge))(
        lambda prompt: next(answers)
    )
    chat(FRANCE)
    with capture_logs() as logs:
        chat(FRANCE_2)
    assert seen == [("PARIS", "paris")] and results(logs)[0]["verify_correct"] is True


def test_observations_travel_with_the_entry_in_a_shared_tier(tmp_path: Path) -> None:
    """What one process learnt about an entry is in the partition it shares."""
    path = tmp_path / "cache.db"
    cache = MultiLevelCache([SQLiteBackend(path=path)])
    match = verified(verify=True)
    chat = cache_by_intent(cache=cache, semantic=match)(lambda prompt: "Paris")
    chat(FRANCE)
    chat(FRANCE_2)  # verified: right
    with sqlite3.connect(path) as db:
        (blob,) = [
            v for k, v in db.execute("SELECT key, value FROM llm_cache") if k.endswith(":sem")
        ]
    entries = decode_partition(bytes(blob), "test-words", WordsEmbedder.dimension)
    observed = {e.key: e.observations for e in entries if e.observations}
    ((key, learnt),) = observed.items()
    assert len(learnt) == 1 and learnt[0][1] is True
    other = verified(verify=True)  # another process over the same file
    again = cache_by_intent(cache=MultiLevelCache([SQLiteBackend(path=path)]), semantic=other)(
        lambda prompt: "Paris"
    )
    again(FRANCE_3)
    known = {e.key: e.observations for e in other.index.entries(*_partitions(other))}
    assert known[key] == learnt


def _partitions(match: SemanticMatch) -> tuple[str, float]:
    (name,) = list(match.index._partitions)  # one partition in these tests
    return name, 0.0


def test_stats_command_counts_verification_calls(cache: MultiLevelCache) -> None:
    answers = iter(["Paris", "Paris", "Lyon"])
    chat = cache_by_intent(cache=cache, semantic=verified(verify=True))(
        lambda prompt: next(answers)
    )
    with capture_logs() as logs:
        chat(FRANCE)
        chat(FRANCE_2)
        chat(FRANCE_3)
    lines = b"".join(json.dumps(e).encode() + b"\n" for e in results(logs))
    data = summarize(io.BytesIO(lines)).as_dict()
    assert data["verify"]["calls"] >= 1 and data["misses"] == 3 and data["hits"] == 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="exclude"):
        verified(verify=True, shadow=True)
    with pytest.raises(ConfigurationError, match="verify="):
        verified(verify="fuzzy")
    with pytest.raises(ConfigurationError, match="explore"):
        verified(verify=True, explore=2.0)
    assert verified(verify=True).serves_semantic


def test_benchmark_verified_rows(tmp_path: Path) -> None:
    """``benchmarks.semantic --verified`` writes the verified rows beside the static
    ones, with verification calls and net calls saved (no figure is checked)."""
    from benchmarks.semantic import main

    write_pairs(tmp_path / "pairs.json")
    write_pairs(tmp_path / "cal.json", PAIRS[::-1])
    out = tmp_path / "rows.json"
    code = main([
        "--pairs", str(tmp_path / "pairs.json"), "--calibrate", str(tmp_path / "cal.json"),
        "--embedder", "tests.support.semantic_support:WordsEmbedder", "--verified",
        "--json", str(out),
    ])  # fmt: skip
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    for rate in ("0.01", "0.02", "0.05"):
        row = rows[f"verified δ={rate}"]
        assert {"served", "wrong_rate", "recall", "verify_calls", "net_saved"} <= set(row)
        assert row["net_saved"] == row["served"] - row["verify_calls"]
        assert f"max_wrong={rate}" in rows
    assert rows["max_wrong=0.02"]["verify_calls"] == 0
