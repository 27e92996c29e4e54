"""The built distributions, as a user gets them from a package index.

The wheel is installed (not editable) into a fresh virtualenv and used from a working
directory that holds its own ``backends/`` package, as many web applications do: the
built-in backends live under ``llm_middleware.backends``, a name only this project owns.

``./scripts/test`` builds the sdist and wheel with ``python -m build`` and passes their
folder in ``LLM_MIDDLEWARE_DIST``; run alone, this module builds them itself.
"""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CACHED_CALL = """
import email
import json
from llm_middleware import cache_by_intent

calls = []

@cache_by_intent
def ask(prompt: str) -> str:
    calls.append(prompt)
    return f"answer to {prompt}"

answers = [ask("What is a vector database?"), ask("What is a vector database?")]
print(json.dumps({"answers": answers, "calls": len(calls), "hits": ask.cache_info()["hits"]}))
"""

FIND_BACKENDS = """
import importlib.util, json
spec = importlib.util.find_spec("backends")
print(json.dumps(None if spec is None else spec.origin))
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding one sdist and one wheel of this checkout."""
    given = os.environ.get("LLM_MIDDLEWARE_DIST")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {dist}, found {found}"
    return found[0]


def test_the_wheel_holds_only_names_this_project_owns(dist: Path) -> None:
    """Every file sits under ``llm_middleware/``; entry points name ``llm_middleware.backends``."""
    with zipfile.ZipFile(_one(dist, "*.whl")) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read(
            next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"llm_middleware"}
    for module in ("memory", "memcached", "redis", "sqlite"):
        assert f"llm_middleware/backends/{module}.py" in names
    assert "llm_middleware/py.typed" in names
    for data in (
        "default-rules.toml",
        "intent-train.json",
        "intent-test.json",
        "intent-centroids.json",
    ):
        assert f"llm_middleware/data/{data}" in names, data  # the intent rules and examples
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "no licence text"
    group = entry_points.split("[llm_middleware.backends]", 1)[1].split("[", 1)[0]
    targets = [line.split("=", 1)[1].strip() for line in group.splitlines() if "=" in line]
    assert targets and all(t.startswith("llm_middleware.backends.") for t in targets), targets


def test_the_sdist_leaves_out_caches_and_virtualenvs(dist: Path) -> None:
    """The source archive carries the sources, tests and docs, but no local debris."""
    with tarfile.open(_one(dist, "*.tar.gz")) as sdist:
        names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    parts = {part for name in names for part in name.split("/")}
    debris = {".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
    debris |= {".hypothesis", ".git", ".benchmarks"}
    assert not parts & debris, sorted(parts & debris)
    assert not [name for name in names if name.startswith(("site/", "dist/", "build/"))]
    assert not [name for name in names if name.endswith((".pyc", ".whl"))]
    for needed in ("LICENSE", "README.md", "backends/memory.py", "llm_middleware/__init__.py"):
        assert needed in names, needed


def _pip_install(python: Path, requirement: str) -> None:
    """Install into the environment of ``python`` with this environment's pip."""
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "install", "--quiet", requirement], check=True, capture_output=True, timeout=300
    )


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel (and its dependencies) installed, not editable."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=False)  # this environment's pip installs into it: faster
    python = env_dir / "bin" / "python"
    _pip_install(python, str(_one(dist, "*.whl")))
    return python


@pytest.fixture
def web_app(tmp_path: Path) -> Path:
    """A user's project with its own top-level ``backends`` package."""
    own = tmp_path / "backends"
    own.mkdir()
    (own / "__init__.py").write_text('"""The web application\'s own backends."""\n')
    (own / "memory.py").write_text("raise ImportError('the application module, not ours')\n")
    return tmp_path


def _run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    done = subprocess.run(
        [str(python), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_wheel_works_beside_a_users_own_backends_package(
    installed: Path, web_app: Path
) -> None:
    """The demo, the backends table and a cached call work; the user's package stays theirs."""
    demo = _run(installed, web_app, "-m", "llm_middleware", "demo", "--latency", "0")
    summary = next(line for line in demo.stdout.splitlines() if "hits saved" in line)
    assert "9 hits (L1: 7, L2: 2)" in summary, demo.stdout

    table = _run(installed, web_app, "-m", "llm_middleware", "backends").stdout
    memory = next(line for line in table.splitlines() if line.startswith("memory "))
    assert "llm_middleware.backends.memory:MemoryBackend" in memory and memory.endswith("ok")
    # installed without extras: the table says which one brings the missing client
    memcached = next(line for line in table.splitlines() if line.startswith("memcached "))
    assert memcached.endswith(
        "fails to load: No module named 'pymemcache' (pip install \"llm-middleware[memcached]\")"
    )

    call = json.loads(_run(installed, web_app, "-c", CACHED_CALL).stdout)
    assert call == {
        "answers": ["answer to What is a vector database?"] * 2,
        "calls": 1,
        "hits": {"L1": 1},
    }

    theirs = json.loads(_run(installed, web_app, "-c", FIND_BACKENDS).stdout)
    assert theirs == str(web_app / "backends" / "__init__.py")


def test_import_backends_finds_nothing_of_ours(installed: Path, tmp_path: Path) -> None:
    """Installing the wheel adds no top-level ``backends`` package to the environment."""
    assert json.loads(_run(installed, tmp_path, "-c", FIND_BACKENDS).stdout) is None
    ours = _run(installed, tmp_path, "-c", "import llm_middleware.backends as b; print(b.__file__)")
    assert "site-packages" in ours.stdout


def test_the_metadata_describes_the_package_for_an_index(dist: Path) -> None:
    """Licence, classifiers, keywords and a README that reads well off the repository."""
    with zipfile.ZipFile(_one(dist, "*.whl")) as wheel:
        raw = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")))
    metadata = email.message_from_bytes(raw)
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier") or []
    for version in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert any(c.startswith("Topic :: ") for c in classifiers)
    assert "cache" in (metadata["Keywords"] or "").split(",")
    for backend in ("memcached", "Redis", "Redis Cluster", "SQLite"):
        assert backend in metadata["Summary"], backend

    readme = metadata.get_payload()
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert 'pip install "llm-middleware[memcached,openai]"' in readme
    assert 'pip install -e ".[memcached,openai]"' in readme  # beside the from-source line
    # On an index the README stands alone: a link to a repository file would break there.
    targets = re.findall(r"\]\(([^)\s]+)", readme) + re.findall(r"<a\s[^>]*href=\"([^\"]+)", readme)
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#", "mailto:"))]
    assert not relative, f"links that break on a package index: {relative}"


def test_the_testing_kit_names_its_extra(installed: Path, dist: Path, tmp_path: Path) -> None:
    """Without pytest the kit says which extra to install; with that extra it imports."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    kit = [str(installed), "-c", "import llm_middleware.testing"]
    bare = subprocess.run(kit, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert bare.returncode == 1
    assert bare.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: llm_middleware.testing needs pytest, which the 'testing' extra"
        ' installs: pip install "llm-middleware[testing]"'
    )
    _pip_install(installed, f"llm-middleware[testing] @ {_one(dist, '*.whl').as_uri()}")
    _run(installed, tmp_path, "-c", "from llm_middleware.testing import BackendContract")


def test_a_wheel_builds_straight_from_the_checkout(tmp_path: Path) -> None:
    """``pip install .`` builds the wheel from the checkout, not from an sdist: the
    checkout's link ``llm_middleware/backends`` must not put the backends in twice."""
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation"]
    subprocess.run(
        [*build, "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    with zipfile.ZipFile(_one(tmp_path, "*.whl")) as wheel:
        names = wheel.namelist()
    backends = sorted(n for n in names if n.startswith("llm_middleware/backends/"))
    assert len(backends) == len(set(backends)) and "llm_middleware/backends/memory.py" in backends
