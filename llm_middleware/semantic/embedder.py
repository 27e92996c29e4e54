"""The `Embedder` protocol: texts in, one L2-normalised float32 row per text out.

An embedder has a ``name`` (it names its calibration table and partitions its
index, so vectors of two models never meet) and a ``dimension``. ``embed`` is
synchronous; an embedder may also offer ``aembed`` (`AsyncEmbedder`), else async
code runs ``embed`` in a thread (`aembed`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # numpy is the ``semantic`` extra's: imported where vectors are made
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = object

__all__ = ["AsyncEmbedder", "Embedder", "Vectors", "aembed", "check_vectors", "unit_rows"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors: ``embed(texts)`` returns a ``(len(texts), dimension)``
    float32 array whose rows have unit length (cosine similarity = dot product)."""

    @property
    def name(self) -> str:
        """A stable name of the model (and its settings) the vectors come from."""

    @property
    def dimension(self) -> int:
        """The length of every vector."""

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit-length float32 row per text, in order."""


@runtime_checkable
class AsyncEmbedder(Embedder, Protocol):
    """An `Embedder` that can also embed without blocking the event loop."""

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        """`Embedder.embed`, awaited."""


async def aembed(embedder: Embedder, texts: Sequence[str]) -> Vectors:
    """Embed from async code: the embedder's own ``aembed`` when it has one, else its
    ``embed`` in a worker thread (never blocking the event loop)."""
    if isinstance(embedder, AsyncEmbedder):
        return await embedder.aembed(texts)
    return await asyncio.to_thread(embedder.embed, texts)


def unit_rows(vectors: object) -> Vectors:
    """``vectors`` as a C-contiguous float32 2-D array with unit-length rows (a zero
    row stays zero)."""
    import numpy as np

    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def check_vectors(embedder: Embedder, texts: Sequence[str], vectors: object) -> Vectors:
    """``vectors`` checked against what ``embedder`` promised: one finite row of
    ``dimension`` values per text, made unit length. Raises `ValueError` otherwise."""
    import numpy as np

    array = unit_rows(vectors)
    expected = (len(texts), embedder.dimension)
    if array.shape != expected:
        raise ValueError(
            f"embedder {embedder.name!r} returned shape {array.shape}, expected {expected}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"embedder {embedder.name!r} returned non-finite values")
    return array
