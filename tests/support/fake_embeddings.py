"""``POST /v1/embeddings`` of the fake OpenAI server (see ``tests/support/fake_openai.py``).

A vector depends only on the model, ``dimensions`` and the input (a text or a token array),
as a real model's does: ``dimensions`` float32 values in [-1, 1) drawn from a seed made of
them (8 by default). ``encoding_format="base64"`` answers each vector as base64 of its
little-endian float32 bytes, as OpenAI does; otherwise as JSON numbers (which read back as
exactly those float32 values). A model whose name ends in ``-f64`` answers float64 values
instead, as some OpenAI-compatible servers do. Usage counts about four characters (or one
token id) per token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
from typing import Any

JSONDict = dict[str, Any]
DEFAULT_DIMENSIONS = 8


def inputs(body: JSONDict) -> list[str | list[int]]:
    """The inputs of a request, one per vector answered."""
    given = body.get("input")
    if isinstance(given, str):
        return [given]
    if isinstance(given, list) and given and all(type(item) is int for item in given):
        return [given]  # one token array
    return list(given) if isinstance(given, list) else []


def vector(model: str, dimensions: int, item: str | list[int]) -> list[float]:
    """The float32 vector the fake model gives ``item``."""
    seed = hashlib.sha256(json.dumps([model, dimensions, item]).encode()).digest()
    rng = random.Random(seed)
    if model.endswith("-f64"):
        return [rng.uniform(-1, 1) for _ in range(dimensions)]
    packed = struct.pack(f"<{dimensions}f", *(rng.uniform(-1, 1) for _ in range(dimensions)))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _tokens(item: str | list[int]) -> int:
    return len(item) if isinstance(item, list) else len(item) // 4 + 1


class Embeddings:
    """The route: JSON only (the embeddings API does not stream)."""

    def answer(self, body: JSONDict, call: int) -> JSONDict:
        model = str(body.get("model", ""))
        dims = body.get("dimensions")
        dimensions = dims if isinstance(dims, int) and dims > 0 else DEFAULT_DIMENSIONS
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs(body)):
            values = vector(model, dimensions, item)
            embedding: Any = values
            if as_base64:
                embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *values)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(_tokens(item) for item in inputs(body))
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": model, "usage": usage}

    def stream(self, body: JSONDict, call: int) -> list[str]:
        raise NotImplementedError("the embeddings API does not stream")
