"""A third-party backend plugin: pip-installed, resolved by name, never imported by the core.

The plugin lives in ``tests/support/plugin_pkg`` (its own ``pyproject.toml`` and entry points, no
dependency on llm_middleware). This module installs it into the running environment for its
tests and uninstalls it afterwards.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import llm_middleware
from llm_middleware import (
    Backend,
    BackendLoadError,
    ConfigurationError,
    MultiLevelCache,
    backend_from_url,
    cache_by_intent,
    load_backend,
)
from llm_middleware.registry import registered_backends
from llm_middleware.testing import BackendContract, FakeClock

from .support.llm import Counter

PLUGIN_DIR = Path(__file__).parent / "support" / "plugin_pkg"
DIST = "llm-middleware-example-plugin"
MODULE = "llm_middleware_example_plugin"

pytestmark = pytest.mark.usefixtures("installed_plugin")


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def installed_plugin() -> Iterator[None]:
    """The example plugin, pip-installed for this module and uninstalled afterwards."""
    if importlib.util.find_spec("hatchling") is not None:  # build offline with the env's hatchling
        build = ["--no-build-isolation", "--no-index"]
    else:  # pip fetches hatchling from the index into an isolated build environment
        build = []
    done = pip("install", "--no-deps", "--force-reinstall", *build, str(PLUGIN_DIR))
    assert done.returncode == 0, f"pip install {PLUGIN_DIR} failed:\n{done.stderr}"
    registered_backends(refresh=True)
    try:
        yield
    finally:
        done = pip("uninstall", "-y", DIST)
        for name in [m for m in sys.modules if m == MODULE or m.startswith(MODULE + ".")]:
            del sys.modules[name]
        registered_backends(refresh=True)
        assert done.returncode == 0, f"pip uninstall {DIST} failed:\n{done.stderr}"


def test_plugin_resolves_by_name_and_url() -> None:
    """``example-dict`` is a backend by name and by URL; a misspelled option is refused."""
    by_name = load_backend("example-dict", maxsize=10)
    by_url = backend_from_url("example-dict://?maxsize=10")
    for backend in (by_name, by_url):
        assert type(backend).__module__ == MODULE and type(backend).__name__ == "DictBackend"
        assert isinstance(backend, Backend) and repr(backend) == "DictBackend(maxsize=10)"
    with pytest.raises(ConfigurationError, match="no option 'max_size'; valid options: maxsize"):
        load_backend("example-dict", max_size=10)


def test_cli_lists_the_plugin_and_the_broken_one() -> None:
    """``llm-middleware backends`` shows the plugin as ok and the broken one as failing."""
    done = run("-m", "llm_middleware", "backends")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    good, broken = lines["example-dict"], lines["example-broken"]
    assert good.split()[1:] == [f"{MODULE}:DictBackend", DIST, "ok"]
    assert f"{MODULE}.broken:Backend" in broken and "fails to load" in broken
    assert "examplelib" in broken and not broken.endswith(" ok")


def test_plugin_as_second_tier_serves_and_promotes(clock: FakeClock, llm: Counter) -> None:
    """As L2 under `cache_by_intent`, the plugin serves hits once L1 expires and is promoted."""
    l1 = load_backend("memory", maxsize=100, ttl=300, timer=clock)
    l2 = load_backend("example-dict", maxsize=100, timer=clock)
    cache = MultiLevelCache([l1, l2], timer=clock)

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return llm(prompt)

    answer = chat("Explain B-trees")  # LONG: stored in every tier, for 24 h (L1 caps it at 300 s)
    assert chat("Explain B-trees") == answer and llm.calls == 1
    clock.advance(301)  # gone from L1, still in the plugin tier
    with capture_logs() as events:
        assert chat("Explain B-trees") == answer
    assert llm.calls == 1
    result = next(e for e in events if e["event"] == "cache.result")
    assert (result["outcome"], result["tier"]) == ("hit", "L2")
    promote = next(e for e in events if e["event"] == "cache.promote")
    assert (promote["from_tier"], promote["to_tiers"]) == ("L2", ["L1"])
    assert l1.get(str(result["key"])) is not None and l2.get(str(result["key"])) is not None
    with capture_logs() as events:
        chat("Explain B-trees")
    assert next(e for e in events if e["event"] == "cache.result")["tier"] == "L1"
    assert cache.stats()["hits"] == {"L1": 2, "L2": 1} and cache.stats()["promotions"] == 1
    clock.advance(86_400)  # past the LONG lifetime: gone from the plugin tier too
    chat("Explain B-trees")
    assert llm.calls == 2


NEVER_IMPORTED = f"""
import sys
import llm_middleware
from llm_middleware.registry import registered_backends

assert {MODULE!r} not in sys.modules, "importing llm_middleware imported the plugin"
names = registered_backends(refresh=True)
assert "example-dict" in names, sorted(names)
assert {MODULE!r} not in sys.modules, "listing the backends imported the plugin"
backend = llm_middleware.load_backend("example-dict", maxsize=10)
assert {MODULE!r} in sys.modules
print(type(backend).__module__, type(backend).__name__)
"""


def test_core_imports_the_plugin_only_when_it_is_loaded() -> None:
    """Neither importing the core nor listing backends imports the plugin; loading it does."""
    done = run("-c", NEVER_IMPORTED)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [MODULE, "DictBackend"]
    core = Path(llm_middleware.__file__).parent
    assert not [p.name for p in core.rglob("*.py") if MODULE in p.read_text(encoding="utf-8")]


def test_broken_plugin_error_names_the_entry_point() -> None:
    """A plugin that fails at import raises `BackendLoadError` naming its entry point."""
    value = f"{MODULE}.broken:Backend"
    with pytest.raises(BackendLoadError) as caught:
        load_backend("example-broken")
    message = str(caught.value)
    assert "'example-broken'" in message and value in message and "examplelib" in message
    assert isinstance(caught.value.__cause__, ImportError)
    with pytest.raises(BackendLoadError, match="'example-broken'"):
        backend_from_url("example-broken://")


class TestExamplePluginContract(BackendContract):
    """The shared backend contract, run by the plugin against its `DictBackend`."""

    fake_clock = True

    def make_backend(self, timer: Callable[[], float] | None) -> Backend:
        # Resolved through the registry because this module installs the plugin itself; in
        # the plugin's own test suite, ``return DictBackend(maxsize=10_000, timer=timer)``.
        assert timer is not None
        return load_backend("example-dict", maxsize=10_000, timer=timer)
