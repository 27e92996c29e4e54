"""Built-in cache backends of llm_middleware.

Each is registered in the entry-point group ``llm_middleware.backends`` exactly
like a third-party plugin; the core finds them only through it.
"""
