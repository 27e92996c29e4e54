"""Every ```python block of README.md and docs/*.md runs here, so the documentation cannot rot.

One test per page. A page's blocks run in order in one fresh module namespace (a later block
uses the names of earlier ones), in a temporary working directory, from the unconfigured
process defaults. The conventions a page can rely on:

* ``OpenAI()`` works: every page gets a local `FakeOpenAIServer`, named by the environment
  variables ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` that the real client reads.
* ``Anthropic()`` works on a page whose examples mention ``anthropic``: it gets a local
  `FakeAnthropicServer`, named by ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY``.
* A page whose examples mention an environment variable of `SERVICES` gets that server, really
  running, its address in the variable: ``MEMCACHED_SERVERS`` (``host:port``, a real
  memcached) and ``REDIS_URL`` (a real redis-server). Without the binary the page is skipped,
  which fails under ``CI=true``.
* ``<!-- not-run: why -->`` on the line before a fence: the block is compiled (its syntax is
  checked) but not run. The reason is required and shown; keep such blocks rare.
* ``<!-- module: name -->`` before a fence: the block runs as the importable module ``name``
  (its names also join the page's namespace), so a page can show a package and then its
  tests importing it. A module named ``test_*`` is a test suite: it is also run by pytest, in
  a subprocess, next to the page's other modules (so the plugin example in docs/backends.md
  really passes the backend contract).

Tracebacks point into the Markdown file: a block is compiled with the page's path as its
file name, at its own line numbers.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import logging
import os
import pkgutil
import re
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from tests.support.fake_anthropic import FakeAnthropicServer
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.memcached_servers import MemcachedServer, find_memcached

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-run|module)\s*:(?P<value>.*?)-->\s*$")
_OPENAI_IMPORT = re.compile(r"^\s*(from|import)\s+(openai|llm_middleware\.openai)\b", re.M)


@dataclass(frozen=True)
class Block:
    """One fenced ```python block: its code, the line of its first code line, its markers."""

    page: Path
    line: int  # 1-based line number of the first line of code
    code: str
    not_run: str | None = None
    module: str | None = None

    @property
    def where(self) -> str:
        return f"{_shown(self.page)}:{self.line}"


def _shown(page: Path) -> str:
    """A page's path as tracebacks and messages show it: relative to the repository."""
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def python_blocks(page: Path) -> list[Block]:
    """The page's ```python blocks in order, with the markers on the line before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    marker: tuple[str, str, int] | None = None
    i = 0
    while i < len(lines):
        found = _MARKER.match(lines[i])
        if found:
            if marker is not None:
                raise AssertionError(f"{page.name}:{marker[2]}: a marker not followed by a fence")
            marker = (found["kind"], found["value"].strip(), i + 1)
            i += 1
            continue
        opening = _FENCE.match(lines[i])
        if not opening:
            if marker is not None and lines[i].strip():
                raise AssertionError(f"{page.name}:{marker[2]}: a marker not followed by a fence")
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].lower()
        body: list[str] = []
        i += 1
        while i < len(lines) and not _closes(lines[i], fence):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        if info in ("python", "py"):
            kind, value, at = marker or ("", "", 0)
            if kind and not value:
                raise AssertionError(f"{page.name}:{at}: <!-- {kind}: ... --> needs a value")
            blocks.append(
                Block(
                    page,
                    i - len(body),
                    "\n".join(body) + "\n",
                    not_run=value if kind == "not-run" else None,
                    module=value if kind == "module" else None,
                )
            )
        elif marker is not None:
            raise AssertionError(f"{page.name}:{marker[2]}: a marker before a non-python fence")
        marker = None
    if marker is not None:
        raise AssertionError(f"{page.name}:{marker[2]}: a marker not followed by a fence")
    return blocks


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence) and stripped == fence[0] * len(stripped)


# -- services a page can ask for by naming their environment variable -------------------------


def _memcached() -> Iterator[str]:
    pytest.importorskip("pymemcache")
    if find_memcached() is None:
        pytest.skip("memcached binary not found (install memcached or set MEMCACHED_BIN)")
    with MemcachedServer() as server:
        yield server.address


def _redis() -> Iterator[str]:
    pytest.importorskip("redis")
    from tests.support.redis_servers import RedisServer, find_redis_server

    if find_redis_server() is None:
        pytest.skip("redis-server binary not found (install redis-server or set REDIS_SERVER_BIN)")
    with RedisServer() as server:
        yield server.url


SERVICES: dict[str, Callable[[], Iterator[str]]] = {
    "MEMCACHED_SERVERS": _memcached,
    "REDIS_URL": _redis,
}


# -- running a page ----------------------------------------------------------------------------


def _compile(block: Block) -> types.CodeType:
    # Pad with newlines so that line numbers in tracebacks are the Markdown file's.
    source = "\n" * (block.line - 1) + block.code
    return compile(source, _shown(block.page), "exec")


def _new_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    sys.modules[name] = module
    return module


@contextlib.contextmanager
def _restored_logging() -> Iterator[None]:
    """Examples configure structlog and logging; give the next test what it had."""
    loggers = [logging.getLogger(), logging.getLogger("llm_middleware")]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        structlog.reset_defaults()
        for logger, level, handlers, propagate in saved:
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate


def run_page(blocks: list[Block], module_name: str) -> dict[str, object]:
    """Run the blocks in order in one module namespace; returns the namespace."""
    page = _new_module(module_name)
    added = [module_name]
    try:
        for block in blocks:
            code = _compile(block)
            if block.not_run is not None:
                continue
            if block.module is not None:
                module = _new_module(block.module)
                added.append(block.module)
                exec(code, module.__dict__)
                page.__dict__.update(
                    {k: v for k, v in module.__dict__.items() if not k.startswith("__")}
                )
            else:
                exec(code, page.__dict__)
        return page.__dict__
    finally:
        for name in added:
            sys.modules.pop(name, None)


EXAMPLE_PAGES = [page for page in PAGES if python_blocks(page)]


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=[_shown(page) for page in EXAMPLE_PAGES])
def test_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAIServer
) -> None:
    blocks = python_blocks(page)
    runnable = "".join(b.code for b in blocks if b.not_run is None)
    if _OPENAI_IMPORT.search(runnable):
        pytest.importorskip("openai")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-examples")
    monkeypatch.delenv("LLM_MIDDLEWARE_SECRET", raising=False)
    with contextlib.ExitStack() as stack:
        for variable, service in SERVICES.items():
            monkeypatch.delenv(variable, raising=False)
            if variable in runnable:
                address = stack.enter_context(contextlib.contextmanager(service)())
                monkeypatch.setenv(variable, address)
        if re.search(r"\banthropic\b", runnable):
            pytest.importorskip("anthropic")
            claude = stack.enter_context(FakeAnthropicServer())
            monkeypatch.setenv("ANTHROPIC_BASE_URL", claude.base_url)
            monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-docs-examples")
        stack.enter_context(_restored_logging())
        name = "docs_example_" + re.sub(r"\W", "_", page.stem)
        run_page(blocks, name)


SUITE_PAGES = [
    p for p in PAGES if any((b.module or "").startswith("test_") for b in python_blocks(p))
]


@pytest.mark.parametrize("page", SUITE_PAGES, ids=[_shown(page) for page in SUITE_PAGES])
def test_page_test_suites_pass(page: Path, tmp_path: Path) -> None:
    modules = [b for b in python_blocks(page) if b.module is not None]
    for block in modules:
        (tmp_path / f"{block.module}.py").write_text(block.code, encoding="utf-8")
    suites = [f"{b.module}.py" for b in modules if (b.module or "").startswith("test_")]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites],
        cwd=tmp_path,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},  # a second faster
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout, result.stdout


def _library_modules() -> Iterator[types.ModuleType]:
    """Every module of the two packages, except ``__main__`` and those whose optional
    dependency is not installed."""
    for package in ("llm_middleware", "backends"):
        yield (root := importlib.import_module(package))
        for info in pkgutil.iter_modules(root.__path__, f"{package}."):
            if info.name.endswith(".__main__"):
                continue
            try:
                yield importlib.import_module(info.name)
            except ModuleNotFoundError:
                continue


def test_docstring_examples_run() -> None:
    """``>>>`` examples in the library's docstrings, if any, run as doctests."""
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for module in _library_modules():
        for test in finder.find(module):
            runner.run(test)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) failed (output above)"


# -- the conventions themselves ----------------------------------------------------------------


def test_not_run_blocks_are_rare_and_say_why() -> None:
    skipped = [b for p in PAGES for b in python_blocks(p) if b.not_run is not None]
    total = sum(len(python_blocks(p)) for p in PAGES)
    assert total >= 20, f"only {total} python blocks found: is the parser broken?"
    assert len(skipped) <= 3, "\n".join(f"{b.where}: {b.not_run}" for b in skipped)
    for block in skipped:
        assert len(block.not_run or "") >= 10, f"{block.where}: say why it cannot run"


def test_readme_has_a_cached_openai_call() -> None:
    blocks = python_blocks(ROOT / "README.md")
    runnable = "".join(b.code for b in blocks if b.not_run is None)
    assert _OPENAI_IMPORT.search(runnable), "README's quickstart must call the real openai client"


def test_parser_reads_markers_and_indented_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\na = 1\n```\n\n<!-- not-run: needs a real cluster -->\n"
        "```python\nraise SystemExit\n```\n\n- item\n\n    ```python\n    b = a + 1\n    ```\n"
        "\n```bash\necho no\n```\n\n<!-- module: docs_tmp_mod -->\n```py\nc = 3\n```\n"
    )
    blocks = python_blocks(page)
    assert [b.code for b in blocks] == ["a = 1\n", "raise SystemExit\n", "b = a + 1\n", "c = 3\n"]
    assert [b.line for b in blocks] == [4, 9, 15, 24]
    assert blocks[1].not_run == "needs a real cluster"
    assert blocks[3].module == "docs_tmp_mod"
    namespace = run_page(blocks, "docs_tmp_page")
    assert (namespace["b"], namespace["c"]) == (2, 3)
    assert "docs_tmp_mod" not in sys.modules


def test_tracebacks_point_into_the_markdown(tmp_path: Path) -> None:
    page = tmp_path / "broken.md"
    page.write_text("# t\n\ntext\n\n```python\nx = 1\ny = x / 0\n```\n")
    with pytest.raises(ZeroDivisionError) as raised:
        run_page(python_blocks(page), "docs_tmp_broken")
    last = raised.traceback[-1]
    assert (Path(str(last.path)).name, last.lineno + 1) == ("broken.md", 7)
