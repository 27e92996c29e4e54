"""The documentation site builds with ``mkdocs build --strict`` and renders offline.

Strict mode (with the ``validation`` settings of mkdocs.yml) fails on a page missing from the
nav or a nav entry without a page, a broken link or anchor, and a docstring the API reference
cannot render. The built site is then served on a loopback port and every page opened in
Debian's headless ``chromium`` (``./scripts/test`` installs it where missing), which must
log no console error, request nothing from another host, draw every Mermaid diagram and
find every internal link; screenshots of three pages land in ``build/docs-screenshots/``.
Without the ``docs`` extra or ``chromium`` the tests are skipped locally, which fails under
``CI=true`` (see conftest.py).
"""

from __future__ import annotations

import ast
import base64
import functools
import http.server
import importlib
import importlib.util
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

import llm_middleware
import llm_middleware.backends

from .support.chromium_cdp import Browser, chromium_path
from .test_docs_examples import PAGES, python_blocks

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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as ``mkdocs build --strict`` writes it."""
    missing = _missing()
    if missing:
        pytest.skip(
            f"the docs extra is not installed ({', '.join(missing)}): pip install -e '.[docs]'"
        )
    site = tmp_path_factory.mktemp("site")
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
    return site


def test_site_builds_strict(site: Path) -> None:
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    documented = [f"llm_middleware.{name}" for name in llm_middleware.__all__]
    documented += [f"{module}.{name}" for module in PUBLIC_MODULES for name in _all_of(module)]
    missing = [name for name in documented if f'id="{name}"' not in api]
    assert not missing, f"add these to docs/api.md: {missing}"
    assert "[[rule]]" in api  # a reST literal block rendered as code (docs/_griffe)
    chain = (site / "chain" / "index.html").read_text(encoding="utf-8")
    assert '<pre class="mermaid">' in chain, "the call-flow diagram is not a mermaid block"
    assert not (site / "_griffe").exists(), "the griffe extension was published with the site"


def _imported_names(code: str) -> Iterator[tuple[str, str]]:
    """(module, name) of every ``from llm_middleware... import name`` in ``code``."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llm_middleware"):
            for alias in node.names:
                yield str(node.module), alias.name


def test_every_name_an_example_imports_is_in_the_api_reference(site: Path) -> None:
    """A reader who meets ``from llm_middleware.x import y`` in the README or a page finds
    ``y`` in the API reference (a module imported that way is not itself an entry)."""
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    missing = set()
    for page in PAGES:
        for block in python_blocks(page):
            for module, name in _imported_names(block.code):
                try:
                    importlib.import_module(f"{module}.{name}")
                    continue  # a submodule
                except ImportError:
                    pass
                found = getattr(importlib.import_module(module), name)
                home = f"{getattr(found, '__module__', '')}.{getattr(found, '__qualname__', '')}"
                if f'id="{module}.{name}"' not in api and f'id="{home}"' not in api:
                    missing.add(f"{module}.{name} ({page.name})")
    assert not missing, f"add these to docs/api.md: {sorted(missing)}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site over HTTP on a free loopback port (its links are directory URLs)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


# Resolves once Material has replaced every Mermaid block by its drawing (or after 15 s).
DIAGRAMS_DRAWN = """new Promise(resolve => {
  const start = Date.now();
  (function check() {
    const pending = document.querySelectorAll("pre.mermaid").length;
    if (pending === 0 || Date.now() - start > 15000) resolve(pending);
    else setTimeout(check, 50);
  })();
})"""
PAGE_FACTS = """(() => ({
  ids: [...document.querySelectorAll("[id]")].map(e => e.id),
  links: [...document.querySelectorAll("a[href]")].map(a => a.href),
  text: document.body.innerText,
  diagrams: [...document.querySelectorAll("div.mermaid")].map(
    d => d.getBoundingClientRect().height),
}))()"""
RAW_DIAGRAM = re.compile(
    r"^\s*(flowchart|graph|sequenceDiagram|classDiagram|stateDiagram)\b", re.MULTILINE
)
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
SCREENSHOTS = {"": "home", "chain/": "how-a-call-flows", "performance/": "performance"}


def _svg_roles(node: dict[str, Any]) -> Iterator[str]:
    """The ``aria-roledescription`` of every SVG under ``node``, closed shadow roots included."""
    if node.get("localName") == "svg":
        attributes = node.get("attributes", [])
        pairs = dict(zip(attributes[::2], attributes[1::2], strict=True))
        yield pairs.get("aria-roledescription", "")
    for child in node.get("children", []) + node.get("shadowRoots", []):
        yield from _svg_roles(child)


def _problems_in(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions, failed loads and requests to other hosts."""
    problems = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            problems.append(f"console {params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            problems.append(f"exception: {details.get('exception', details)}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            problems.append(f"log error: {params['entry']['text']} {params['entry'].get('url')}")
        elif method == "Network.requestWillBeSent":
            url = urlsplit(params["request"]["url"])
            if url.scheme not in ("data", "blob", "about") and url.hostname not in LOOPBACK:
                problems.append(f"request to another host: {params['request']['url']}")
    return problems


def test_every_page_renders_offline_in_chromium(site: Path, served: str) -> None:
    """Every page in headless Chromium: no console error, no request off this machine, no
    Mermaid source left undrawn, no broken internal link; screenshots of three pages."""
    binary = chromium_path()
    if binary is None:
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    pages = sorted(
        f"{p.parent.relative_to(site).as_posix()}/".removeprefix("./")
        for p in site.rglob("index.html")
    )
    assert "chain/" in pages and "performance/" in pages and "" in pages
    shots = ROOT / "build" / "docs-screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    browser = Browser(binary, profile)
    problems: dict[str, list[str]] = {}
    ids: dict[str, set[str]] = {}
    links: dict[str, list[str]] = {}
    try:
        for domain in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"):
            browser.page(domain)
        browser.page(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        for page in pages:
            start = len(browser.events)
            browser.page("Page.navigate", url=served + page)
            browser.wait_for_event("Page.loadEventFired", start)
            undrawn = browser.evaluate(DIAGRAMS_DRAWN)
            browser.evaluate("document.fonts.ready.then(() => true)")
            facts = browser.evaluate(PAGE_FACTS)
            found = _problems_in(browser.events[start:])
            if undrawn or RAW_DIAGRAM.search(facts["text"]):
                found.append("Mermaid source shown as text: the diagram was not drawn")
            if facts["diagrams"]:
                tree = browser.page("DOM.getDocument", depth=-1, pierce=True)["root"]
                roles = list(_svg_roles(tree))
                drawn = [role for role in roles if role and role != "error"]
                if len(drawn) < len(facts["diagrams"]) or "error" in roles:
                    found.append(f"diagrams drawn: {roles} for {len(facts['diagrams'])} blocks")
                if min(facts["diagrams"]) < 100:
                    found.append(f"a diagram is too small to read: {facts['diagrams']}")
            if found:
                problems[page] = found
            ids[page] = set(facts["ids"])
            links[page] = facts["links"]
            if page in SCREENSHOTS:
                height = browser.page("Page.getLayoutMetrics")["cssContentSize"]["height"]
                clip = {"x": 0, "y": 0, "width": 1280, "height": min(height, 2400), "scale": 1}
                shot = browser.page(
                    "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip
                )
                (shots / f"{SCREENSHOTS[page]}.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
    assert not problems, "\n".join(
        f"/{page}: {p}" for page, found in problems.items() for p in found
    )

    broken = []
    for page, hrefs in links.items():
        for href in hrefs:
            if not href.startswith(served):
                continue
            path, _, fragment = href.removeprefix(served).partition("#")
            target = site / path / "index.html" if path == "" or path.endswith("/") else site / path
            if not target.is_file():
                broken.append(f"{page or '/'} -> {href}")
            elif fragment and path in ids and unquote(fragment) not in ids[path]:
                broken.append(f"{page or '/'} -> {href} (no such anchor)")
    assert not broken, "\n".join(broken)
    for name in SCREENSHOTS.values():
        assert (shots / f"{name}.png").stat().st_size > 10_000, name
