"""The process-wide defaults: the cache and the intent rules a bare decorator uses.

Without configuration the default cache is the original sketch's two memory
tiers (100 items / 300 s, 1,000 items / 3,600 s), or the tiers named by the
environment variable ``LLM_MIDDLEWARE_TIERS`` (a ``;``-separated list of
backend URLs). It is built on first use, so `configure` may run after decoration.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .contract import Backend
from .encryption import EncryptionKeys
from .errors import ConfigurationError
from .policy import Classifier, IntentRules
from .registry import backend_from_url
from .tiers import MultiLevelCache

if TYPE_CHECKING:
    from .semantic.match import SemanticMatch

__all__ = ["DEFAULT_TIERS", "TIERS_ENV", "configure", "default_cache", "default_rules"]

TIERS_ENV = "LLM_MIDDLEWARE_TIERS"
DEFAULT_TIERS = "memory://?maxsize=100&ttl=300;memory://?maxsize=1000&ttl=3600"

_lock = threading.Lock()
_cache: MultiLevelCache | None = None
_rules: IntentRules | Classifier = IntentRules.default()
_namespace_required = False
_semantic: SemanticMatch | None = None
_generation = 0  # bumped by every configure()/reset(): remembered decisions expire


def cache_from_urls(
    urls: str | Sequence[str],
    *,
    secret: str | bytes | Sequence[str | bytes] | None = None,
    encryption_key: EncryptionKeys | None = None,
) -> MultiLevelCache:
    """A cache whose tiers are the backends of ``urls`` (a list, or ``;``-separated)."""
    if isinstance(urls, str):
        urls = [u.strip() for u in urls.split(";")]
    urls = [u for u in urls if u]
    if not urls:
        raise ConfigurationError("no backend URLs given for the cache tiers")
    backends = [backend_from_url(url) for url in urls]
    return MultiLevelCache(backends, secret=secret, encryption_key=encryption_key)


def configure(
    *,
    cache: MultiLevelCache | None = None,
    tiers: str | Sequence[str | Backend] | None = None,
    rules: IntentRules | Classifier | None = None,
    secret: str | bytes | Sequence[str | bytes] | None = None,
    namespace_required: bool | None = None,
    encryption_key: EncryptionKeys | None = None,
    semantic: SemanticMatch | bool | None = None,
) -> MultiLevelCache:
    """Set the process default cache (a `MultiLevelCache`, or ``tiers``: backends or
    backend URLs, signed with ``secret`` and encrypted in shared tiers with
    ``encryption_key`` when given), the default intent rules, whether every call
    must resolve a namespace, and the process default semantic matching (a
    `SemanticMatch`, or ``False`` to turn it off again). Returns the default cache.

    Errors in the configuration (unknown backend, bad URL or option) raise here.
    """
    global _cache, _rules, _namespace_required, _semantic, _generation
    if cache is not None and tiers is not None:
        raise ConfigurationError("configure() takes cache= or tiers=, not both")
    if secret is not None and tiers is None:
        raise ConfigurationError("configure(secret=...) signs the tiers= it builds; pass both")
    if encryption_key is not None and tiers is None:
        raise ConfigurationError(
            "configure(encryption_key=...) encrypts the tiers= it builds; pass both"
        )
    if tiers is not None:
        if isinstance(tiers, str) or all(isinstance(t, str) for t in tiers):
            cache = cache_from_urls(tiers, secret=secret, encryption_key=encryption_key)  # type: ignore[arg-type]
        else:
            backends = [backend_from_url(t) if isinstance(t, str) else t for t in tiers]
            cache = MultiLevelCache(backends, secret=secret, encryption_key=encryption_key)
    if rules is not None and not callable(rules):
        raise ConfigurationError(f"rules must be IntentRules or a classifier, not {rules!r}")
    if semantic is not None and semantic is not False:
        from .semantic.match import SemanticMatch

        if not isinstance(semantic, SemanticMatch):
            raise ConfigurationError(f"semantic= takes a SemanticMatch or False, not {semantic!r}")
    with _lock:
        if cache is not None:
            _cache = cache
        if rules is not None:
            _rules = rules
        if namespace_required is not None:
            _namespace_required = namespace_required
        if semantic is not None:
            _semantic = semantic or None
        _generation += 1
    return default_cache()


def default_cache() -> MultiLevelCache:
    """The process default cache, built from the environment on first use."""
    global _cache
    cache = _cache
    if cache is None:
        with _lock:
            if _cache is None:
                _cache = cache_from_urls(os.environ.get(TIERS_ENV) or DEFAULT_TIERS)
            cache = _cache
    return cache


def default_rules() -> IntentRules | Classifier:
    """The process default classifier."""
    return _rules


def namespace_required() -> bool:
    """Whether calls without a namespace run uncached (``configure(namespace_required=)``)."""
    return _namespace_required


def default_semantic() -> SemanticMatch | None:
    """The process default semantic matching (``configure(semantic=...)``), if any."""
    return _semantic


def generation() -> int:
    """A number that changes whenever the defaults may have (`configure`, `reset`)."""
    return _generation


def reset() -> None:
    """Forget the configured defaults (the next use rebuilds them). For tests."""
    global _cache, _rules, _namespace_required, _semantic, _generation
    with _lock:
        _cache = None
        _semantic = None
        _rules = IntentRules.default()
        _namespace_required = False
        _generation += 1
