"""The parts of semantic matching: index, shared partitions, calibration, the CLI,
the OpenAI wrapper, and the default embedder end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from llm_middleware import MultiLevelCache, SemanticMatch, configure  # noqa: E402
from llm_middleware.errors import ConfigurationError  # noqa: E402
from llm_middleware.semantic.calibration import (  # noqa: E402
    CalibrationTable,
    Observations,
    Pair,
    answer_ids,
    observe,
    threshold_for,
)
from llm_middleware.semantic.embedder import unit_rows  # noqa: E402
from llm_middleware.semantic.index import Entry, Partition, SemanticIndex  # noqa: E402
from llm_middleware.semantic.shared import (  # noqa: E402
    BlobError,
    decode_partition,
    encode_partition,
)

from .support.llm import Counter  # noqa: E402
from .support.semantic_support import WordsEmbedder, table, write_pairs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def entry(i: int, vector: Any, expires: float = 1e12) -> Entry:
    return Entry(f"key{i}", f"text {i}", vector, expires)


def test_hnsw_agrees_with_brute_force() -> None:
    """Above ``hnsw_above`` the graph finds the same nearest entry as brute force."""
    rng = np.random.default_rng(3)
    rows = unit_rows(rng.standard_normal((600, 32)))
    small = Partition(32, max_entries=1000, hnsw_above=10_000)
    big = Partition(32, max_entries=1000, hnsw_above=100)
    for i, row in enumerate(rows):
        small.add(entry(i, row))
        big.add(entry(i, row))
    probes = unit_rows(rows[:50] + 0.05 * rng.standard_normal((50, 32)))
    agree = sum(
        small.nearest(p, 0.0).key == big.nearest(p, 0.0).key  # type: ignore[union-attr]
        for p in probes
    )
    assert agree >= 48


def test_partitions_are_bounded_and_entries_expire() -> None:
    """Oldest entries leave a full partition; least recently used partitions leave the
    index; an expired entry is never found."""
    index = SemanticIndex(4, max_partitions=2, max_entries=2, hnsw_above=100)
    vectors = unit_rows(np.eye(4))
    for i in range(3):
        index.add("p", entry(i, vectors[i], expires=100.0 + i))
    assert [e.key for e in index.entries("p", 0.0)] == ["key1", "key2"]
    assert index.nearest("p", vectors[0], 0.0).key in ("key1", "key2")  # type: ignore[union-attr]
    assert index.normal("p", "text 2", 0.0) is not None
    assert index.normal("p", "text 2", 102.0) is None  # expired with its answer
    assert index.nearest("p", vectors[2], 101.5).key == "key2"  # type: ignore[union-attr]
    index.add("q", entry(9, vectors[3]))
    index.add("r", entry(9, vectors[3]))  # "p" is the least recently used
    assert index.entries("p", 0.0) == []


def test_shared_partition_round_trip_and_refusals() -> None:
    """Entries survive the trip through bytes (vectors to float16 precision); bounds
    hold; anything malformed or of another embedder is refused."""
    vectors = unit_rows(np.random.default_rng(1).standard_normal((5, 8)))
    entries = [entry(i, vectors[i], 50.0 + i) for i in range(5)]
    blob = encode_partition(entries, "e", 8, limit=3)
    back = decode_partition(blob, "e", 8)
    assert [e.key for e in back] == ["key2", "key3", "key4"]
    np.testing.assert_allclose(back[0].vector, vectors[2], atol=2e-3)
    assert len(encode_partition(entries, "e", 8, limit=5, max_bytes=300)) <= 300
    for bad in (b"junk", blob[:-2], blob.replace(b'"e"', b'"f"')):
        with pytest.raises(BlobError):
            decode_partition(bad, "e", 8)
    with pytest.raises(BlobError):
        decode_partition(blob, "e", 16)


def test_answer_ids_follow_duplicate_chains() -> None:
    """Duplicates share an answer, transitively; a non-duplicate pair does not."""
    ids = answer_ids([Pair("a", "b", 1), Pair("b", "c", 1), Pair("c", "d", 0)])
    assert ids["a"] == ids["b"] == ids["c"] != ids["d"]


def test_threshold_has_a_margin() -> None:
    """The threshold is where an upper confidence bound of the wrong rate fits the
    budget: with few serves and one error, no threshold qualifies."""
    sims = [1.0 - i / 1000 for i in range(1000)]
    correct = [i % 100 != 99 for i in range(1000)]  # 1% wrong, spread evenly
    seen = Observations(["semantic"] * 1000, sims, correct, [True] * 1000)
    assert threshold_for(seen, 0.05) == pytest.approx(sims[-1])
    assert threshold_for(seen, 0.01) == 2.0  # 1% observed is not <= 1% with confidence
    few = Observations(["semantic"] * 10, sims[:10], [True] * 9 + [False], [True] * 10)
    assert threshold_for(few, 0.2) == 2.0
    with pytest.raises(ConfigurationError):
        threshold_for(seen, 0.0)


def test_table_never_loosens() -> None:
    """A rate between calibrated ones takes the stricter threshold; below them, an error."""
    cal = CalibrationTable("x", {0.01: 0.95, 0.05: 0.9})
    assert cal.threshold(0.03) == 0.95 and cal.threshold(0.5) == 0.9
    with pytest.raises(ConfigurationError, match="calibrated rates"):
        cal.threshold(0.001)
    assert CalibrationTable.from_json(cal.as_json()).thresholds == cal.thresholds


def test_shipped_table_and_misuse() -> None:
    """The default embedder's table ships; a custom embedder needs its own table."""
    shipped = CalibrationTable.shipped("all-MiniLM-L6-v2")
    assert shipped is not None and shipped.pairs == 20_000
    assert set(shipped.thresholds) >= {0.01, 0.02, 0.05, 0.10}
    with pytest.raises(ConfigurationError, match="calibrate"):
        SemanticMatch(embedder=WordsEmbedder())
    with pytest.raises(ConfigurationError, match="test-words"):
        SemanticMatch(calibration=table())
    with pytest.raises(ConfigurationError, match="max_wrong"):
        SemanticMatch(1.5, embedder=WordsEmbedder(), calibration=table())


def test_calibrate_command(tmp_path: Path) -> None:
    """``llm-middleware semantic calibrate`` writes a table a SemanticMatch accepts."""
    out = tmp_path / "table.json"
    done = subprocess.run(
        [sys.executable, "-m", "llm_middleware", "semantic", "calibrate",
         "--pairs", str(write_pairs(tmp_path / "pairs.json")),
         "--embedder", "tests.support.semantic_support:WordsEmbedder", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = CalibrationTable.load(out)
    assert made.embedder == "test-words" and made.pairs == 20
    assert SemanticMatch(0.3, embedder=WordsEmbedder(), calibration=out).table == made
    bad = subprocess.run(
        [sys.executable, "-m", "llm_middleware", "semantic", "calibrate",
         "--pairs", str(tmp_path / "missing.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode != 0 and "missing.json" in bad.stderr


def test_protocol_counts_levels(tmp_path: Path) -> None:
    """Exact and normalized repeats are served by their levels, never wrongly."""
    pairs = [Pair("What is X?", "what is x", 1), Pair("What is Y", "What is Y", 1)]
    seen = observe(pairs, WordsEmbedder().embed)
    assert seen.level == ["normalized", "exact"] and seen.correct == [True, True]


def test_wrap_openai_matches_chat_but_never_embeddings(
    openai_server: Any, cache: MultiLevelCache
) -> None:
    """Chat requests differing only in wording share an answer; embedding requests
    (even under a process-wide semantic default) never do."""
    openai = pytest.importorskip("openai")
    from llm_middleware.openai import wrap_openai

    configure(semantic=SemanticMatch(embedder=WordsEmbedder(), calibration=table(0.85)))
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)
    cached = wrap_openai(client, cache=cache)

    def ask(text: str, model: str = "gpt-test") -> Any:
        return cached.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}]
        )

    first = ask("Explain the capital of France")
    assert ask("Explain the capital city of France").model_dump() == first.model_dump()
    assert openai_server.calls == 1
    ask("Explain the capital city of France", model="gpt-other")
    assert openai_server.calls == 2
    cached.embeddings.create(model="emb", input="Explain the capital of France")
    cached.embeddings.create(model="emb", input="Explain the capital city of France")
    assert openai_server.calls == 4


def test_default_embedder_end_to_end(cache: MultiLevelCache, llm: Counter) -> None:
    """``SemanticMatch()`` with the real all-MiniLM-L6-v2: the shipped calibration, the
    normalized level; a user's table lets a paraphrase through."""
    from llm_middleware import cache_by_intent
    from llm_middleware.semantic.minilm import MiniLMEmbedder, WeightsNotFound

    try:
        embedder = MiniLMEmbedder()
    except WeightsNotFound as exc:
        pytest.skip(str(exc))
    default = SemanticMatch()
    assert default.max_wrong == 0.01 and default.embedder.name == "all-MiniLM-L6-v2"

    @cache_by_intent(cache=cache, semantic=default)
    def chat(prompt: str) -> str:
        return llm(prompt)

    chat("Explain the capital of France.")
    assert chat("explain the capital of  France") == "answer #1 to Explain the capital of France."
    own = CalibrationTable("all-MiniLM-L6-v2", {0.05: 0.9})
    loose = SemanticMatch(0.05, embedder=embedder, calibration=own)

    @cache_by_intent(cache=cache, semantic=loose)
    def ask(prompt: str) -> str:
        return llm(prompt)

    stored = ask("Explain what HTTP caching is")
    assert ask("Explain HTTP caching") == stored  # cosine 0.98
    assert ask("Explain how to cook rice") != stored
    assert llm.calls == 3


def test_benchmark_runs_and_writes_rows(tmp_path: Path) -> None:
    """``benchmarks.semantic`` prints and writes the named rows (no figure is checked);
    it refuses to calibrate on the pairs it evaluates."""
    pairs = write_pairs(tmp_path / "pairs.json")
    other = write_pairs(tmp_path / "calibration.json")
    out = tmp_path / "rows.json"
    command = [
        sys.executable, "-m", "benchmarks.semantic", "--pairs", str(pairs),
        "--embedder", "tests.support.semantic_support:WordsEmbedder", "--sizes", "300",
        "--latency-queries", "5", "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        [*command, "--calibrate", str(other)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    names = {"default", "max_wrong=0.01", "max_wrong=0.02", "max_wrong=0.05", "max_wrong=0.10"}
    assert names <= set(rows) and {"static cosine 0.80", "static cosine 0.90"} <= set(rows)
    for row in rows.values():
        assert {"served", "correct", "precision", "recall", "wrong_rate"} <= set(row)
    same = subprocess.run(
        [*command, "--calibrate", str(pairs)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert same.returncode != 0 and "--calibrate must not be the --pairs file" in same.stderr


def test_demo_names_its_embedder() -> None:
    """The demo shows semantic matching and says which embedder it used."""
    done = subprocess.run(
        [sys.executable, "-m", "llm_middleware", "demo", "--latency", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tail = done.stdout.split("semantic matching", 1)[1]
    assert "embedder all-MiniLM-L6-v2" in tail
    assert " normalized " in tail and " semantic similarity " in tail


def test_wrap_anthropic_matches_with_the_system_prompt_exact(
    anthropic_server: Any, cache: MultiLevelCache
) -> None:
    """``wrap_anthropic(client, semantic=...)``: a paraphrase shares the answer; the same
    paraphrase under another system prompt does not."""
    anthropic = pytest.importorskip("anthropic")
    from llm_middleware.anthropic import wrap_anthropic

    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key="t", max_retries=0)
    match = SemanticMatch(embedder=WordsEmbedder(), calibration=table(0.85))
    cached = wrap_anthropic(client, cache=cache, semantic=match)

    def ask(text: str, system: str = "Be brief.") -> Any:
        return cached.messages.create(
            model="claude-test", max_tokens=64, system=system,
            messages=[{"role": "user", "content": text}],
        )  # fmt: skip

    first = ask("Explain the capital of France")
    assert ask("Explain the capital city of France") == first
    assert anthropic_server.calls == 1
    ask("Explain the capital city of France", system="Be thorough.")
    assert anthropic_server.calls == 2


def test_shared_through_redis(redis_server: Any, llm: Any) -> None:
    """A second cache and index over the same Redis finds the first one's prompt."""
    from llm_middleware import cache_by_intent
    from llm_middleware.backends.memory import MemoryBackend
    from llm_middleware.backends.redis import RedisBackend

    def build() -> Any:
        tiers = [MemoryBackend(maxsize=10), RedisBackend(url=redis_server.url, socket_timeout=2)]
        match = SemanticMatch(embedder=WordsEmbedder(), calibration=table(0.85))
        return cache_by_intent(cache=MultiLevelCache(tiers), semantic=match)(
            lambda prompt: llm(prompt)
        )

    first, second = build(), build()
    answer = first("Explain the capital of France")
    assert second("Explain the capital city of France") == answer and llm.calls == 1


SECOND_PROCESS = """
import sys
from llm_middleware import MultiLevelCache, SemanticMatch, cache_by_intent
from llm_middleware.backends.sqlite import SQLiteBackend
from tests.support.semantic_support import WordsEmbedder, table

match = SemanticMatch(embedder=WordsEmbedder(), calibration=table(0.85))
cache = MultiLevelCache([SQLiteBackend(path=sys.argv[1])])
chat = cache_by_intent(cache=cache, semantic=match, name="chat")(lambda prompt: "from the first")
print(chat("Explain the capital of France"))
"""


def test_another_process_finds_the_match(tmp_path: Path) -> None:
    """A prompt stored by another process (through SQLite) is matched here."""
    from llm_middleware import cache_by_intent
    from llm_middleware.backends.sqlite import SQLiteBackend

    path = tmp_path / "cache.db"
    done = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "from the first", done.stderr
    match = SemanticMatch(embedder=WordsEmbedder(), calibration=table(0.85))
    cache = MultiLevelCache([SQLiteBackend(path=path)])
    chat = cache_by_intent(cache=cache, semantic=match, name="chat")(lambda prompt: "from here")
    assert chat("Explain the capital city of France") == "from the first"
    assert chat("Explain how to bake bread") == "from here"
