"""The default embedder: all-MiniLM-L6-v2 in numpy, its weights found three ways."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from llm_middleware.semantic import Embedder, aembed  # noqa: E402
from llm_middleware.semantic.minilm import (  # noqa: E402
    MODEL_ENV,
    MiniLMEmbedder,
    WeightsNotFound,
    find_weights,
)

# The sentence-transformers documentation's example vectors of this model (computed
# by its torch implementation): the first five of 384 values.
REFERENCE = {
    "This is an example sentence": [
        0.0676569119, 0.0634959862, 0.0487131625, 0.0793049634, 0.0374480858,
    ],
    "Each sentence is converted": [
        0.0864386037, 0.102762647, 0.00539456727, 0.00204443652, -0.00996339135,
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    """The default embedder from the installed weights package."""
    try:
        return MiniLMEmbedder()
    except WeightsNotFound as exc:  # ./scripts/test installs the package
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory, embedder: MiniLMEmbedder) -> Path:
    """The two weight files in a plain directory, as a user might keep them."""
    folder = tmp_path_factory.mktemp("minilm")
    for name in ("model.safetensors", "tokenizer.json"):
        (folder / name).write_bytes(embedder.weights.read(name))
    return folder


def test_vectors_equal_the_reference_implementation(embedder: MiniLMEmbedder) -> None:
    """The numpy forward pass gives the published vectors of the torch model."""
    vectors = embedder.embed(list(REFERENCE))
    assert vectors.dtype == np.float32 and vectors.shape == (2, 384)
    for row, expected in zip(vectors, REFERENCE.values(), strict=True):
        np.testing.assert_allclose(row[:5], expected, atol=1e-6)


def test_cosines_rank_paraphrases_first(embedder: MiniLMEmbedder) -> None:
    """Unit vectors; a paraphrase is far closer than another topic (pinned cosines)."""
    texts = [
        "How do I learn Python quickly?",
        "What is the fastest way to learn Python?",
        "How do I cook rice?",
    ]
    v = embedder.embed(texts)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    cos = v @ v.T
    assert cos[0, 1] == pytest.approx(0.92053, abs=1e-4)
    assert cos[0, 2] == pytest.approx(0.11874, abs=1e-4)


def test_batching_does_not_change_vectors(embedder: MiniLMEmbedder) -> None:
    """A text embedded alone or padded in a batch of longer ones gets the same vector."""
    texts = ["hi", "a much longer question about the capital cities of Europe and Asia", "why?"]
    batch = embedder.embed(texts)
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_protocol_and_async(embedder: MiniLMEmbedder) -> None:
    """The embedder is an `Embedder`; async code embeds in a thread, same vectors."""
    assert isinstance(embedder, Embedder)
    assert embedder.name == "all-MiniLM-L6-v2" and embedder.dimension == 384
    texts = ["What is a monad?"]
    np.testing.assert_array_equal(asyncio.run(aembed(embedder, texts)), embedder.embed(texts))


def test_weights_from_a_path_or_zip(
    weights_dir: Path, tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    """A directory or a zip the user names gives the same vectors as the package."""
    text = ["What is the meaning of life?"]
    expected = embedder.embed(text)
    from_dir = MiniLMEmbedder(weights_dir)
    assert from_dir.source.startswith("path")
    np.testing.assert_allclose(from_dir.embed(text), expected, atol=1e-6)
    archive = tmp_path / "minilm.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name in ("model.safetensors", "tokenizer.json"):
            out.write(weights_dir / name, name)
    np.testing.assert_allclose(MiniLMEmbedder(archive).embed(text), expected, atol=1e-6)


def test_missing_weights_raise_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path without the files, or an environment path without them, fails at once."""
    with pytest.raises(WeightsNotFound, match=r"model\.safetensors"):
        MiniLMEmbedder(tmp_path)
    monkeypatch.setenv(MODEL_ENV, str(tmp_path))
    with pytest.raises(WeightsNotFound):
        find_weights()


class _Hub(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []

    def _answer(self, body: bool) -> None:
        self.requests.append(f"{self.command} {self.path}")
        name = self.path.split("/resolve/", 1)[-1].split("/", 1)[-1]
        data = self.files.get(name) if "/resolve/" in self.path else None
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Repo-Commit", "0" * 40)
        self.send_header("ETag", f'"{abs(hash(data)):x}"')
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub(weights_dir: Path) -> Iterator[str]:
    """A local HTTP server standing in for the Hugging Face hub."""
    _Hub.files = {
        n: (weights_dir / n).read_bytes() for n in ("model.safetensors", "tokenizer.json")
    }
    _Hub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_weights_downloaded_from_the_hub_when_allowed(
    hub: str, tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    """Without a path or the package, ``download=True`` fetches the two files through
    huggingface_hub (``HF_ENDPOINT``); without it, the error names the three ways."""
    script = (
        "import json, sys, importlib.util\n"
        "from llm_middleware.semantic import minilm\n"
        "minilm.PACKAGE = 'no_such_weights_package'\n"
        "try:\n"
        "    minilm.MiniLMEmbedder()\n"
        "except minilm.WeightsNotFound as exc:\n"
        "    print(json.dumps(str(exc)))\n"
        "e = minilm.MiniLMEmbedder(download=True)\n"
        "print(json.dumps([e.source, e.embed(['What is a hub?'])[0].tolist()]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LLM_MIDDLEWARE"))}
    env.update(HF_ENDPOINT=hub, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    refused, downloaded = (json.loads(line) for line in done.stdout.splitlines())
    assert "download=True" in refused and "pip install --no-deps" in refused
    source, vector = downloaded
    assert source == "hub sentence-transformers/all-MiniLM-L6-v2"
    np.testing.assert_allclose(vector, embedder.embed(["What is a hub?"])[0], atol=1e-6)
    assert any("model.safetensors" in r for r in _Hub.requests)
