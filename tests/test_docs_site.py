"""The documentation site builds with ``mkdocs build --strict``.

Strict mode (with the ``validation`` settings of mkdocs.yml) fails on a page missing from the
nav or a nav entry without a page, a broken link or anchor, and a docstring the API reference
cannot render. Without the ``docs`` extra the test is skipped locally, which fails under
``CI=true`` (see conftest.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import llm_middleware
import llm_middleware.backends

ROOT = Path(__file__).resolve().parent.parent
# Modules users import beside the package root: every name in their __all__ is documented.
PUBLIC_MODULES = [
    "llm_middleware.openai",
    "llm_middleware.anthropic",
    "llm_middleware.prometheus",
    "llm_middleware.testing",
] + [
    module.name
    for module in pkgutil.iter_modules(llm_middleware.backends.__path__, "llm_middleware.backends.")
]
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "pymdownx")


def _all_of(module: str) -> list[str]:
    names: list[str] = importlib.import_module(module).__all__
    return names


def _missing() -> list[str]:
    missing = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is absent
            found = False
        if not found:
            missing.append(name)
    return missing


def test_site_builds_strict(tmp_path: Path) -> None:
    missing = _missing()
    if missing:
        pytest.skip(
            f"the docs extra is not installed ({', '.join(missing)}): pip install -e '.[docs]'"
        )
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # material's banner about MkDocs 2.0
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    documented = [f"llm_middleware.{name}" for name in llm_middleware.__all__]
    documented += [f"{module}.{name}" for module in PUBLIC_MODULES for name in _all_of(module)]
    missing = [name for name in documented if f'id="{name}"' not in api]
    assert not missing, f"add these to docs/api.md: {missing}"
    assert "[[rule]]" in api  # a reST literal block rendered as code (docs/_griffe)
    chain = (site / "chain" / "index.html").read_text(encoding="utf-8")
    assert '<pre class="mermaid">' in chain, "the call-flow diagram is not a mermaid block"
    assert not (site / "_griffe").exists(), "the griffe extension was published with the site"
