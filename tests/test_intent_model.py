"""The optional model beside the rules: nearest centroids over any embedder, combined by
the shorter lifetime, and no import of numpy without it."""

from __future__ import annotations

import hashlib
import itertools
import math
import subprocess
import sys
from collections.abc import Sequence

import pytest

from llm_middleware import CachePolicy, ConfigurationError, IntentRules
from llm_middleware.intent_eval import Labelled, evaluate
from llm_middleware.intent_model import CentroidModel, shipped_examples


class HashedWords:
    """A small embedder of our own for the tests: hashed words and word pairs, 256 dims."""

    dimension = 256

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        rows = []
        for text in texts:
            words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
            row = [0.0] * self.dimension
            for token in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
                digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
                row[int.from_bytes(digest, "big") % self.dimension] += 1.0
            norm = math.sqrt(sum(x * x for x in row)) or 1.0
            rows.append([x / norm for x in row])
        return rows


def test_centroids_learn_the_shipped_examples() -> None:
    """Trained on the shipped training part, the model tells fast from never-changing
    questions of the held-out part better than chance."""
    model = CentroidModel(HashedWords(), margin=0.0)  # margins depend on the embedder
    held_out = shipped_examples("test")
    right = sum(
        model(question).policy is CachePolicy.NEVER
        for question, fact in held_out
        if fact == "fast-changing"
    )
    fast = sum(1 for _, fact in held_out if fact == "fast-changing")
    assert right / fast > 0.5
    assert model("What is the price of gold today?").rule.startswith("centroids:")
    alone = evaluate(model, [Labelled(q, f) for q, f in held_out])  # a classifier by itself
    assert alone.fast_never.count == right


def test_with_the_model_the_rules_stay_careful() -> None:
    """Rules plus the model: never a longer lifetime than the rules alone, so the stale
    risk cannot grow; the verdict says when the model decided."""
    rules = IntentRules.default()
    both = rules.with_model(CentroidModel(HashedWords(), margin=0.0))
    held_out = [Labelled(q, f) for q, f in shipped_examples("test")]
    for item in held_out:
        assert both.classify(item.question).ttl <= rules.classify(item.question).ttl
    assert evaluate(both, held_out).stale_risk.fraction <= 0.02
    decided = [both.classify(item.question).rule for item in held_out]
    assert any(rule.startswith("model:centroids:") for rule in decided)


def test_margin_makes_the_model_abstain() -> None:
    """With a margin no centroid can beat, the model never shortens anything."""
    model = CentroidModel(HashedWords(), margin=2.0)
    assert model("Who won last night?").policy is CachePolicy.LONG


def test_bad_models_are_refused() -> None:
    """No embedder, or labels outside FreshQA's scheme: a clear error at once."""
    with pytest.raises(ConfigurationError, match="embed"):
        CentroidModel(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="labelled"):
        CentroidModel(HashedWords(), [("x", "sometimes")])


def test_rules_alone_import_no_numpy() -> None:
    """Classifying, evaluating and loading the model module never import numpy."""
    code = (
        "import sys, llm_middleware, llm_middleware.intent_eval, llm_middleware.intent_model\n"
        "llm_middleware.IntentRules.default().classify('What is the weather in Rome?')\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_default_model_uses_the_shipped_centroids() -> None:
    """``default_model()``: all-MiniLM-L6-v2 with the centroids shipped for it (no training
    at start-up); the shorter lifetime still wins, and the CLI's ``--model`` uses it."""
    pytest.importorskip("numpy")
    from llm_middleware.intent_model import default_model

    try:
        model = default_model()
    except ConfigurationError as exc:  # the weights are installed by ./scripts/test
        pytest.skip(str(exc))
    assert set(model.centroids) == {"fast-changing", "slow-changing", "never-changing"}
    assert model("What is the price of Bitcoin right now?").policy is CachePolicy.NEVER
    rules = IntentRules.default()
    both = rules.with_model(model)
    for question, _ in shipped_examples("test")[::9]:
        assert both.classify(question).ttl <= rules.classify(question).ttl
    done = subprocess.run(
        [sys.executable, "-m", "llm_middleware", "classify", "Is Gmail down?", "--model"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0 and "policy: NEVER" in done.stdout, done.stderr
