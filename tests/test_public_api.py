"""The public API is exactly what ``__all__`` exports, and the package is typed."""

from __future__ import annotations

import inspect
from importlib import resources

import llm_middleware


def test_all_names_exist_and_are_documented() -> None:
    """Every exported name resolves and has a docstring."""
    for name in llm_middleware.__all__:
        value = getattr(llm_middleware, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, name


def test_contract_names_are_exported() -> None:
    """The names DESIGN.md promises are importable from the package."""
    promised = {
        "cache_by_intent", "CachePolicy", "POLICY_TTL", "determine_cache_policy",
        "IntentRules", "MultiLevelCache", "Backend", "load_backend", "backend_from_url",
        "configure", "bypass", "refresh", "use_policy",
    }  # fmt: skip
    assert promised <= set(llm_middleware.__all__)


def test_py_typed_is_shipped() -> None:
    """The package carries its ``py.typed`` marker."""
    assert resources.files("llm_middleware").joinpath("py.typed").is_file()
