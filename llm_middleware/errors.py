"""The library's exceptions: one root, raised for misuse at decoration or configuration time."""

from __future__ import annotations

__all__ = [
    "BackendLoadError",
    "CacheIdentityWarning",
    "ConfigurationError",
    "DecorationError",
    "LLMMiddlewareError",
    "SkipCache",
]


class LLMMiddlewareError(Exception):
    """Root of every exception this library raises."""


class ConfigurationError(LLMMiddlewareError, ValueError):
    """A cache, backend, URL or rule was configured wrongly (unknown name, bad option...)."""


class BackendLoadError(ConfigurationError):
    """A backend's entry point exists but could not be imported; names the entry point."""


class DecorationError(LLMMiddlewareError, TypeError):
    """`cache_by_intent` was applied to something it cannot cache (e.g. no prompt argument)."""


class SkipCache(LLMMiddlewareError):
    """Raised by a chain step to make the current call uncached; `reason` joins the trace."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CacheIdentityWarning(UserWarning):
    """A decorated closure captures values that cannot tell it from others made alike."""
