"""The call flow stepped through by hand, with no backend at all.

The I/O of a call is a generator of operations (``llm_middleware/_io.py``) so that it
can be written once and run by a sync and an async driver; it can also be run by a
script. Here the test is the driver: it answers each operation the flow asks for,
and checks the order of the operations, what they carry, the answer and the counters.
No backend method is ever called.
"""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

from llm_middleware._io import Flow, TierOp
from llm_middleware.chain import CallContext
from llm_middleware.codec import Codec
from llm_middleware.flow import FlowOptions, cached_call
from llm_middleware.policy import CachePolicy
from llm_middleware.singleflight import Flights
from llm_middleware.stampede import Outcome, Upstream
from llm_middleware.stats import CacheStats, Recorders
from llm_middleware.tiers import MultiLevelCache
from llm_middleware.trace import Trace

NOW = 1_000_000.0
KEY = "llmmw3:~:0123456789abcdef0123456789abcdef"


class _Untouched:
    """A tier nobody may touch: the script answers every operation itself."""

    def get(self, key: str) -> NoReturn:
        raise AssertionError("a backend was called")

    set = delete = close = get


def _flow(stats: CacheStats) -> tuple[Flow[Any], MultiLevelCache]:
    cache = MultiLevelCache([_Untouched(), _Untouched()], timer=lambda: NOW)  # type: ignore[list-item]
    ctx = CallContext("tests.chat", {"prompt": "Explain DNS"})
    ctx.key, ctx.policy, ctx.ttl, ctx.depth = KEY, CachePolicy.LONG, 86_400, None
    ctx.trace = Trace(ctx.fn, KEY, Recorders(stats))

    def call() -> str:
        raise AssertionError("the script answers the upstream call")

    flow = cached_call(ctx, cache, call, Flights(), FlowOptions())
    return flow, cache


def _start(flow: Flow[Any]) -> object:
    """The flow's first operation on the call's key, after the reads of the generation
    records (``llm_middleware/generations.py``), answered as "never cleared"."""
    op = next(flow)
    while isinstance(op, TierOp) and op.args[0] != KEY:
        assert op.method == "get" and op.args[0].startswith("llmmw3:gen"), op.args
        op = flow.send(None)
    return op


def _expect(op: object, tier: str, method: str) -> TierOp:
    assert isinstance(op, TierOp), op
    assert (op.tier.name, op.method, op.args[0]) == (tier, method, KEY)
    return op


def _finish(flow: Flow[Any], reply: object) -> Any:
    with pytest.raises(StopIteration) as stop:
        flow.send(reply)
    return stop.value.value


def test_a_miss_looks_up_every_tier_calls_once_and_stores_in_both() -> None:
    """Miss: L1 get, L2 get, one upstream call, L1 set and L2 set of the same entry."""
    stats = CacheStats()
    flow, _ = _flow(stats)
    _expect(_start(flow), "L1", "get")
    _expect(flow.send(None), "L2", "get")
    upstream = flow.send(None)
    assert isinstance(upstream, Upstream) and upstream.key == KEY
    first = _expect(flow.send((Outcome("the answer", 42.0), True)), "L1", "set")
    second = _expect(flow.send(None), "L2", "set")
    assert first.args[1] == second.args[1] and first.args[2] == 86_400
    stored = Codec().decode(first.args[1])
    assert (stored.value, stored.policy, stored.expires) == ("the answer", "long", NOW + 86_400)
    assert _finish(flow, None) == "the answer"
    snapshot = stats.snapshot()
    assert (snapshot["misses"], snapshot["stores"], snapshot["hits"]) == (1, 1, {})


def test_a_hit_in_tier_2_is_promoted_to_tier_1() -> None:
    """Hit in L2: the stored bytes are copied to L1 with their remaining lifetime."""
    stats = CacheStats()
    flow, _ = _flow(stats)
    data, _ = Codec().encode("stored", policy="long", created=NOW - 100, ttl=3600, duration_ms=7.0)
    _expect(_start(flow), "L1", "get")
    _expect(flow.send(None), "L2", "get")
    promote = _expect(flow.send(data), "L1", "set")
    assert promote.args[1:] == (data, 3500.0)
    assert _finish(flow, None) == "stored"
    snapshot = stats.snapshot()
    assert snapshot["hits"] == {"L2": 1} and snapshot["promotions"] == 1
    assert snapshot["saved_ms"] == 7.0


def test_a_failing_tier_is_an_error_and_the_next_tier_answers() -> None:
    """An exception thrown into the flow at L1's read is counted; L2 still answers."""
    stats = CacheStats()
    flow, _ = _flow(stats)
    data, _ = Codec().encode("stored", policy="long", created=NOW, ttl=60, duration_ms=1.0)
    _expect(_start(flow), "L1", "get")
    _expect(flow.throw(ConnectionError("L1 is down")), "L2", "get")
    promote = _expect(flow.send(data), "L1", "set")
    with pytest.raises(StopIteration) as stop:  # the promotion fails too: still answered
        flow.throw(ConnectionError("still down"))
    assert stop.value.value == "stored"
    assert promote.args[2] == 60.0
    snapshot = stats.snapshot()
    assert snapshot["errors"] == {"L1": 2} and snapshot["hits"] == {"L2": 1}


def test_an_invalid_entry_is_deleted_and_counted_as_an_error() -> None:
    """Garbage in L1: deleted from L1, an error; the lookup goes on to L2."""
    stats = CacheStats()
    flow, _ = _flow(stats)
    _expect(_start(flow), "L1", "get")
    _expect(flow.send(b"garbage"), "L1", "delete")
    _expect(flow.send(None), "L2", "get")
    assert isinstance(flow.send(None), Upstream)
    flow.close()
    assert stats.snapshot()["errors"] == {"L1": 1}
