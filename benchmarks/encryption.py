"""What encryption costs on a memcached hit: the same calls with ``encryption_key=`` on and off,
measured interleaved in one run, on a memcached this run starts itself.

Two workloads: the 1 kB answer of `PROMPT` (the common hit), and a 1 MB conversation (chat
messages as JSON data) returned by a function and answered from memcached -- compressed, then
encrypted, so the cipher sees the compressed bytes.
"""

from __future__ import annotations

from typing import Any

from ._timing import Subject, sync_runner
from .context import Context
from .report import Row, Target, sample_row
from .workloads import PROMPT, conversation, ours

__all__ = ["encryption"]

SECTION = "encryption: memcached hit, key on vs off"
CONVERSATION = conversation(1_000_000)


def recall(prompt: str) -> list[dict[str, str]]:
    """A stand-in that returns a stored 1 MB conversation."""
    return CONVERSATION


def encryption(ctx: Context) -> list[Row]:
    from tests.support.memcached_servers import MemcachedServer, find_memcached

    if find_memcached() is None:
        return [Row(SECTION, "encryption", status="skipped: memcached not installed")]
    try:
        import cryptography  # noqa: F401

        from llm_middleware.backends.memcached import MemcachedBackend
    except ImportError as exc:
        return [Row(SECTION, "encryption", status=f"skipped: {exc.name} not installed")]
    from llm_middleware import MultiLevelCache
    from llm_middleware.encryption import generate_key

    key = generate_key()
    with MemcachedServer() as server:
        caches = {
            name: MultiLevelCache(
                [MemcachedBackend(servers=[server.address])],
                names=["L3"],
                encryption_key=key if name == "on" else [],
            )
            for name in ("off", "on")
        }
        subjects: list[Subject] = []
        ctx.tracing.filtered()
        for name, cache in caches.items():
            fn: Any = ours(cache)
            big: Any = ours(cache, recall)
            # "Explain ..." is LONG: stored in memcached; distinct prompts per cache
            prompt, big_prompt = f"{PROMPT} ({name})", f"Explain our chat ({name})"
            fn(prompt)
            big(big_prompt)
            if cache.stats()["stores"] != 2:
                raise RuntimeError("the benchmark's answers were not stored in memcached")
            subjects += [
                Subject(f"1 kB {name}", sync_runner(fn, prompt, wall=True), ctx.tracing.filtered),
                Subject(
                    f"1 MB {name}", sync_runner(big, big_prompt, wall=True), ctx.tracing.filtered
                ),
            ]
        sealer = caches["on"].sealer
        payload = b"{" + PROMPT.encode() * 22  # about 1 kB, as the codec writes it
        subjects.append(
            Subject("cipher", sync_runner(lambda: sealer.open("k", sealer.seal("k", payload))))
        )
        try:
            found = ctx.measure(SECTION, subjects)
            missed = sum(c.stats()["misses"] for c in caches.values()) - 4
        finally:
            for cache in caches.values():
                cache.close()
    # a hit decrypts the stored bytes once; a repeated hit on the same bytes skips the cipher
    rows = [sample_row(SECTION, "AES-256-GCM seal + open of 1 kB", found["cipher"])]
    for label, what in (("1 kB", "1 kB answer"), ("1 MB", "1 MB conversation")):
        off = found[f"{label} off"]
        rows += [
            sample_row(SECTION, f"{what} hit, plain", off),
            sample_row(
                SECTION,
                f"{what} hit, encrypted",
                found[f"{label} on"],
                against=off.median_us,
                vs="plain",
                target=Target("<=", 1.15) if label == "1 kB" else None,
                note=f"{missed} calls missed (tier errors under load)" if missed else "",
            ),
        ]
    return rows
