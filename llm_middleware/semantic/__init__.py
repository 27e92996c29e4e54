"""Semantic matching of the intent text: embedders, the index, calibration.

Everything here that computes needs the ``semantic`` extra (numpy, tokenizers,
safetensors, faiss-cpu); importing the package does not.
"""

from __future__ import annotations

from .embedder import AsyncEmbedder, Embedder, aembed

__all__ = ["AsyncEmbedder", "Embedder", "aembed"]
