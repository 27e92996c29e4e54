"""Trace events: one per decision, sharing call_id/fn/key, as DESIGN.md's table says."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from structlog.testing import capture_logs

from llm_middleware import MultiLevelCache, cache_by_intent

from .support.llm import Counter

TABLE: dict[str, tuple[str, set[str]]] = {
    "cache.policy": ("debug", {"policy", "ttl", "rule"}),
    "cache.lookup": ("debug", {"tier", "hit"}),
    "cache.call": ("debug", {"duration_ms"}),
    "cache.promote": ("debug", {"from_tier", "to_tiers"}),
    "cache.store": ("debug", {"tiers", "ttl"}),
    "cache.bypass": ("info", {"reason"}),
    "cache.error": ("warning", {"tier", "error"}),
    "cache.result": (
        "info",
        {"outcome", "tier", "policy", "duration_ms", "saved_ms"},
    ),
}


def check_table(events: list[dict[str, Any]]) -> None:
    for event in events:
        level, fields = TABLE[event["event"]]
        if event["event"] != "cache.bypass":
            assert event["log_level"] == level, event
        assert fields <= set(event), event
        assert {"call_id", "fn", "key"} <= set(event)
    assert len({(e["call_id"], e["fn"], e["key"]) for e in events}) == 1


def test_events_of_a_miss_and_a_hit(cache: MultiLevelCache, llm: Counter) -> None:
    """A miss logs policy, lookups, call, store, result; a hit logs policy, lookup, result."""

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return llm(prompt)

    with capture_logs() as miss:
        chat("Explain Paxos")
    with capture_logs() as hit:
        chat("Explain Paxos")
    assert [e["event"] for e in miss] == [
        "cache.policy",
        "cache.lookup",
        "cache.lookup",
        "cache.call",
        "cache.store",
        "cache.result",
    ]
    assert [e["event"] for e in hit] == ["cache.policy", "cache.lookup", "cache.result"]
    check_table(miss)
    check_table(hit)
    assert miss[0]["key"] == hit[0]["key"] and miss[0]["call_id"] != hit[0]["call_id"]
    assert miss[0]["fn"].endswith("test_events_of_a_miss_and_a_hit.<locals>.chat")
    assert miss[0]["policy"] == "long" and miss[0]["rule"] == "reference:explain"
    assert [e["hit"] for e in miss[1:3]] == [False, False]
    assert miss[4]["tiers"] == ["L1", "L2"] and miss[4]["ttl"] == 86400
    assert (miss[-1]["outcome"], miss[-1]["tier"], miss[-1]["saved_ms"]) == ("miss", None, 0)
    assert (hit[-1]["outcome"], hit[-1]["tier"]) == ("hit", "L1")
    assert hit[-1]["saved_ms"] == pytest.approx(miss[3]["duration_ms"], abs=0.01)


def test_events_of_a_bypass(cache: MultiLevelCache, llm: Counter) -> None:
    """A NEVER prompt logs its policy, a bypass with the reason, the call, the result."""
    chat = cache_by_intent(cache=cache)(lambda prompt: llm(prompt))
    with capture_logs() as events:
        chat("What is the weather today?")
    assert [e["event"] for e in events] == [
        "cache.policy",
        "cache.bypass",
        "cache.call",
        "cache.result",
    ]
    check_table(events)
    assert events[1]["reason"] == "policy_never"
    assert events[-1]["outcome"] == "bypass"


def test_silent_until_structlog_is_configured(
    cache: MultiLevelCache, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """An unconfigured application sees no cache chatter; stdlib logging can opt in."""
    structlog.reset_defaults()
    assert not structlog.is_configured()
    chat = cache_by_intent(cache=cache)(lambda prompt: prompt)
    chat("Explain Raft")
    assert capsys.readouterr() == ("", "")
    with caplog.at_level(logging.DEBUG, logger="llm_middleware"):
        chat("Explain Raft")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("cache.policy ") and messages[-1].startswith("cache.result ")
    assert caplog.records[-1].llm_middleware["outcome"] == "hit"  # type: ignore[attr-defined]


def test_a_stdlib_level_change_takes_effect_at_once(
    cache: MultiLevelCache, caplog: pytest.LogCaptureFixture
) -> None:
    """With structlog routed through stdlib logging, raising the logger's level to DEBUG
    shows debug events on the next call, without reconfiguring structlog."""
    structlog.configure(
        processors=[structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    try:
        logger = logging.getLogger("llm_middleware")
        chat = cache_by_intent(cache=cache)(lambda prompt: prompt)
        with caplog.at_level(logging.INFO, logger="llm_middleware"):
            chat("Explain levels")
        assert [r.levelno for r in caplog.records] == [logging.INFO]
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="llm_middleware"):
            assert logger.isEnabledFor(logging.DEBUG)
            chat("Explain levels")
        assert logging.DEBUG in [r.levelno for r in caplog.records]
    finally:
        structlog.reset_defaults()


def test_production_set_up_writes_one_json_line_per_call(
    cache: MultiLevelCache, tmp_path: Path
) -> None:
    """docs/trace.md's production set-up (orjson, bytes, Unix time): each call is one
    JSON line, and processors see the ``info`` method like any ``logger.info`` call."""
    seen: list[str] = []

    def method_names(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        seen.append(method)
        return event

    path = tmp_path / "cache.log"
    with open(path, "ab") as log_file:
        structlog.configure(
            processors=[
                method_names,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(),
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.BytesLoggerFactory(log_file),
            cache_logger_on_first_use=True,
        )
        try:
            chat = cache_by_intent(cache=cache)(lambda prompt: prompt.upper())
            answers = [chat("Explain Raft") for _ in range(3)]
        finally:
            structlog.reset_defaults()
    assert answers == ["EXPLAIN RAFT"] * 3
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["outcome"] for line in lines] == ["miss", "hit", "hit"]
    check_table([{**line, "log_level": line["level"]} for line in lines[1:2]])
    assert all(line["event"] == "cache.result" and line["level"] == "info" for line in lines)
    assert all(isinstance(line["timestamp"], float) for line in lines)
    assert seen == ["info"] * 3


def test_an_output_that_drops_lines_does_not_reach_the_caller(cache: MultiLevelCache) -> None:
    """An output logger may drop a line by raising ``DropEvent`` (sampling, rate
    limits), as structlog allows: the call's answer is unaffected."""

    class Sampling:
        def __init__(self) -> None:
            self.dropped = 0

        def info(self, *args: Any, **kwargs: Any) -> None:
            self.dropped += 1
            raise structlog.DropEvent

        msg = debug = warning = error = info

    output = Sampling()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *args: output,
    )
    try:
        chat = cache_by_intent(cache=cache)(lambda prompt: prompt.upper())
        assert [chat("Explain Raft") for _ in range(2)] == ["EXPLAIN RAFT"] * 2
    finally:
        structlog.reset_defaults()
    assert output.dropped == 2  # the miss's and the hit's cache.result lines


class _Recording:
    """An output logger that keeps what each ``info`` call was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def info(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))

    msg = debug = warning = error = info


def _fixed_fields(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """The fields that change per call (ids, durations) made equal for comparing."""
    return {**event, "call_id": "id", "duration_ms": 0.0}


@pytest.mark.parametrize(
    "last",
    [
        structlog.processors.JSONRenderer(),  # str
        structlog.processors.JSONRenderer(serializer=orjson.dumps),  # bytes
        lambda _, __, event: ((json.dumps(event),), {"extra": 1}),  # (args, kwargs)
        lambda _, __, event: {"message": json.dumps(event)},  # keywords
    ],
    ids=["str", "bytes", "tuple", "dict"],
)
def test_a_hits_line_reaches_the_output_as_structlogs_own_info_passes_it(
    cache: MultiLevelCache, last: Any
) -> None:
    """The hit writes its ``cache.result`` line through the configured processors and
    output exactly as ``logger.info("cache.result", **fields)`` would: the same
    arguments reach the output logger, fields in the same order, ``event`` after them."""
    output = _Recording()
    structlog.configure(
        processors=[_fixed_fields, structlog.processors.add_log_level, last],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *args: output,
    )
    try:
        chat = cache_by_intent(cache=cache)(lambda prompt: prompt.upper())
        chat("Explain Raft")
        chat("Explain Raft")  # a hit: one cache.result line, and nothing else
        ours = output.calls[-1]
        hit = json.loads(ours[0][0] if ours[0] else ours[1]["message"])  # str or bytes
        fields = {k: v for k, v in hit.items() if k not in ("event", "level")}
        structlog.get_logger("llm_middleware").info("cache.result", **fields)
        theirs = output.calls[-1]
    finally:
        structlog.reset_defaults()
    assert hit["outcome"] == "hit" and list(hit)[-2:] == ["event", "level"]
    assert ours == theirs
