"""Embedders beyond the default: an OpenAI-compatible endpoint, ``fastembed`` and
``sentence-transformers`` when installed, and embedders named on the command line.

An `OpenAIEmbedder` over a client from ``wrap_openai`` goes through the
embeddings cache, so a text is embedded once across processes."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError
from .embedder import Embedder, Vectors, check_vectors

__all__ = [
    "FastEmbedEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "embedder_by_name",
]


class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings endpoint: ``client`` is an ``OpenAI`` or
    ``AsyncOpenAI`` client (or one from ``wrap_openai``, whose embeddings cache it
    then uses). ``dimension`` is asked of the endpoint once when not given."""

    def __init__(
        self, client: Any, model: str = "text-embedding-3-small", *, dimension: int | None = None
    ) -> None:
        self.client, self.model = client, model
        self.name = f"openai:{model}"
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            if _is_async(self.client):
                raise ConfigurationError("an async client needs dimension= given")
            self._dimension = int(self._raw(["dimension"]).shape[1])
        return self._dimension

    def _raw(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        response = self.client.embeddings.create(model=self.model, input=list(texts))
        return np.asarray([d.embedding for d in response.data], dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            import numpy as np

            return np.zeros((0, self.dimension), dtype=np.float32)
        return check_vectors(self, texts, self._raw(texts))

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        if not _is_async(self.client):
            import asyncio

            return await asyncio.to_thread(self.embed, texts)
        response = await self.client.embeddings.create(model=self.model, input=list(texts))
        rows = np.asarray([d.embedding for d in response.data], dtype=np.float32)
        return check_vectors(self, texts, rows)


def _is_async(client: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(getattr(client.embeddings, "create", None))


class FastEmbedEmbedder:
    """``fastembed.TextEmbedding`` (ONNX runtime), when installed."""

    def __init__(self, model: str = "sentence-transformers/all-MiniLM-L6-v2") -> None:
        try:
            from fastembed import TextEmbedding
        except ImportError as exc:
            raise ConfigurationError("FastEmbedEmbedder needs `pip install fastembed`") from exc
        self._model = TextEmbedding(model_name=model)
        self.name = f"fastembed:{model}"
        self.dimension = len(next(iter(self._model.embed(["dimension"]))))

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        rows = np.asarray(list(self._model.embed(list(texts))), dtype=np.float32)
        return check_vectors(self, texts, rows.reshape(len(texts), self.dimension))


class SentenceTransformerEmbedder:
    """A ``sentence_transformers.SentenceTransformer`` (torch), when installed."""

    def __init__(self, model: Any = "sentence-transformers/all-MiniLM-L6-v2") -> None:
        if isinstance(model, str):
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ConfigurationError(
                    "SentenceTransformerEmbedder needs `pip install sentence-transformers`"
                ) from exc
            self.name = f"sentence-transformers:{model}"
            model = SentenceTransformer(model)
        else:
            self.name = f"sentence-transformers:{type(model).__name__}"
        self._model = model
        self.dimension = int(model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return check_vectors(self, texts, rows)


def embedder_by_name(name: str) -> Embedder:
    """An embedder from a name: ``all-MiniLM-L6-v2`` (the default),
    ``fastembed:MODEL``, ``sentence-transformers:MODEL``, ``openai:MODEL`` (a client
    from the environment), or ``package.module:factory`` (called without arguments)."""
    from .minilm import MiniLMEmbedder

    if name in ("", MiniLMEmbedder.name, "minilm"):
        return MiniLMEmbedder()
    kind, _, rest = name.partition(":")
    if kind == "fastembed":
        return FastEmbedEmbedder(rest)
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedder(rest)
    if kind == "openai":
        try:
            from openai import OpenAI
        except ImportError as exc:
            raise ConfigurationError("openai:MODEL needs the openai package") from exc
        return OpenAIEmbedder(OpenAI(), rest)
    if rest:
        try:
            factory = getattr(importlib.import_module(kind), rest)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(f"cannot load embedder {name!r}: {exc}") from exc
        made = factory()
        if not isinstance(made, Embedder):
            raise ConfigurationError(f"{name!r} did not make an Embedder")
        return made
    raise ConfigurationError(
        f"unknown embedder {name!r}: all-MiniLM-L6-v2, fastembed:MODEL, "
        "sentence-transformers:MODEL, openai:MODEL or package.module:factory"
    )
