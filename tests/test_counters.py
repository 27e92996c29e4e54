"""Hit counters: every hit counts once for its function and once for its cache, however
many hits come, from how many threads, and whichever counters are read first."""

from __future__ import annotations

import threading

from llm_middleware import MultiLevelCache, cache_by_intent, cache_info

from .support.llm import Counter

HITS = 1_300  # more than the counters queue before folding, twice over


def test_a_hit_counts_for_its_function_and_for_its_cache(
    cache: MultiLevelCache, llm: Counter
) -> None:
    @cache_by_intent(cache=cache)
    def ask(prompt: str) -> str:
        return llm(prompt)

    @cache_by_intent(cache=cache)
    def other(prompt: str) -> str:
        return llm(prompt)

    ask("Explain Raft")
    other("Explain Paxos")
    for n in range(HITS):
        ask("Explain Raft")
        if n % 2:
            other("Explain Paxos")
        if n == HITS // 2:  # a reading midway changes nothing
            assert cache_info(ask)["hits"]["L1"] == n + 1
    assert cache_info(ask)["hits"] == {"L1": HITS}
    assert cache_info(other)["hits"] == {"L1": HITS // 2}
    assert cache.stats()["hits"] == {"L1": HITS + HITS // 2}
    assert cache_info(ask)["hits"] == {"L1": HITS}  # reading the cache took nothing away
    assert llm.calls == 2


def test_hits_from_many_threads_are_all_counted(cache: MultiLevelCache, llm: Counter) -> None:
    @cache_by_intent(cache=cache)
    def ask(prompt: str) -> str:
        return llm(prompt)

    ask("Explain Raft")
    stop = threading.Event()

    def hits() -> None:
        for _ in range(HITS):
            ask("Explain Raft")

    def readers() -> None:  # snapshots taken while hits are queued and folded
        while not stop.is_set():
            cache.stats()
            cache_info(ask)

    reader = threading.Thread(target=readers)
    reader.start()
    workers = [threading.Thread(target=hits) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    reader.join()
    assert cache_info(ask)["hits"] == {"L1": 4 * HITS}
    assert cache.stats()["hits"] == {"L1": 4 * HITS}
    assert cache_info(ask)["misses"] == cache.stats()["misses"] == 1
