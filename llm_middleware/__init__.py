"""llm_middleware: cache LLM calls by the intent of the prompt.

``@cache_by_intent`` classifies each prompt (time-sensitive → never cached,
reference → 24 h, code → 1 h, anything else → 5 min), looks the call up in
ordered tiers (memory first, memcached last), promotes hits upwards, stores
misses, and emits one structlog event per decision.
"""

from __future__ import annotations

from .chain import CallContext, Step
from .config import configure
from .contract import AsyncBackend, Backend
from .control import bypass, refresh, use_policy
from .decorator import cache_by_intent, cache_info
from .errors import (
    BackendLoadError,
    CacheIdentityWarning,
    ConfigurationError,
    DecorationError,
    LLMMiddlewareError,
    SkipCache,
)
from .observation import observe
from .policy import (
    POLICY_TTL,
    CachePolicy,
    Classification,
    Except,
    IntentRules,
    Rule,
    determine_cache_policy,
)
from .registry import backend_from_url, load_backend
from .semantic import Embedder
from .semantic.match import SemanticMatch
from .stampede import StampedeLock
from .tiers import MultiLevelCache

__version__ = "0.1.0"

__all__ = [
    "POLICY_TTL",
    "AsyncBackend",
    "Backend",
    "BackendLoadError",
    "CacheIdentityWarning",
    "CachePolicy",
    "CallContext",
    "Classification",
    "ConfigurationError",
    "DecorationError",
    "Embedder",
    "Except",
    "IntentRules",
    "LLMMiddlewareError",
    "MultiLevelCache",
    "Rule",
    "SemanticMatch",
    "SkipCache",
    "StampedeLock",
    "Step",
    "backend_from_url",
    "bypass",
    "cache_by_intent",
    "cache_info",
    "configure",
    "determine_cache_policy",
    "load_backend",
    "observe",
    "refresh",
    "use_policy",
]
