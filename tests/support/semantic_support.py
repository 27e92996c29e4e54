"""A small deterministic embedder for the semantic level's logic tests.

Each word gets a fixed pseudo-random direction (from a hash of the word); a text
is the normalised sum of its words' directions. Texts sharing most words are
close; texts sharing none are nearly orthogonal. No model, no randomness."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llm_middleware.semantic.calibration import CalibrationTable

DIMENSION = 256
_WORD = re.compile(r"\w+")


class WordsEmbedder:
    """Bag-of-words vectors; counts the texts it embedded."""

    name = "test-words"
    dimension = DIMENSION

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        return np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[i] += self._word(word)
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out


def table(threshold: float = 0.8) -> CalibrationTable:
    """A calibration of `WordsEmbedder`: ``max_wrong`` 0.01 → ``threshold``."""
    return CalibrationTable("test-words", {0.01: threshold, 0.05: threshold - 0.1})


PAIRS = [
    {"text_a": "how do i learn python", "text_b": "how can i learn python fast", "label": 1},
    {"text_a": "how do i bake bread", "text_b": "how to bake bread at home", "label": 1},
    {"text_a": "what is the capital of peru", "text_b": "capital of peru?", "label": 1},
    {"text_a": "how do i learn java", "text_b": "how do i learn python well", "label": 0},
] * 5
"""A small file of labelled pairs for the semantic commands (duplicates on purpose)."""


def write_pairs(path: Path, pairs: Sequence[dict[str, object]] = PAIRS) -> Path:
    """``pairs`` written as the JSON file of labelled pairs the semantic commands read."""
    path.write_text(json.dumps(list(pairs)), encoding="utf-8")
    return path
