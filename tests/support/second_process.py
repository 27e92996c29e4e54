"""A cache in a fresh interpreter, as a second process (or a restarted one) of an app runs it.

    first = ask_in_a_new_process(SQLiteBackend, path=str(path))
    second = ask_in_a_new_process(SQLiteBackend, path=str(path))
    assert (second["calls"], second["hits"]) == (0, {"L2": 1})  # the first one's answer

Nothing passes from one process to the next but what the L2 tier keeps outside the process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

__all__ = ["ask_in_a_new_process"]

ASK = """
import importlib, json, os, sys
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware import MultiLevelCache, cache_by_intent

module, _, name = sys.argv[1].partition(":")
tier = getattr(importlib.import_module(module), name)(**json.loads(sys.argv[2]))
calls = 0
cache = MultiLevelCache([MemoryBackend(maxsize=100, ttl=300), tier])

@cache_by_intent(cache=cache)
def chat(prompt: str) -> str:
    global calls
    calls += 1
    return f"answer from process {os.getpid()}"

answer = chat("Explain B-trees")  # LONG: stored in every tier
print(json.dumps({"answer": answer, "calls": calls, "hits": cache.stats()["hits"]}))
cache.close()
"""


def ask_in_a_new_process(tier: type, **kwargs: Any) -> dict[str, Any]:
    """In a fresh interpreter, ask ``chat("Explain B-trees")`` (a LONG answer) of a cache with
    an L1 memory tier and an L2 ``tier(**kwargs)`` (JSON arguments); ``answer``, ``calls`` (of
    the function) and ``hits`` (the cache's stats) there, as a dict."""
    target = f"{tier.__module__}:{tier.__qualname__}"
    done = subprocess.run(
        [sys.executable, "-c", ASK, target, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result
