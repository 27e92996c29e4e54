"""Benchmarks of llm_middleware's hit, miss and stampede paths: ``python -m benchmarks.run``."""
