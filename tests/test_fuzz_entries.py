"""Corrupt or hostile bytes in any tier: never an exception, a miss, logged and deleted.

The test writes bytes straight into a memory tier under the key of a decorated call
(read from the trace) and calls again. What may honestly be asserted depends on the
cache:

- **signed** (``secret=``): no change to a stored entry survives. Random bytes,
  truncations, appended bytes and bit flips are all refused with a signature reason
  (``unsigned``, ``unknown_key``, ``bad_signature``) before anything is decoded.
- **unsigned**: a bit flip inside the answer text is a *different, well-formed*
  entry, and is served: without a secret the shared tier is trusted (see
  docs/security.md). So the assertion there is exact agreement with what a reader can
  make of the bytes: refused (a miss, with the codec's reason, deleted), expired (a
  plain miss), or a well-formed envelope, whose value is returned as is. Never an
  exception, never a value of a type the function does not return.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import zlib
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from llm_middleware import MultiLevelCache, cache_by_intent, codec
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.codec import Codec, Envelope, InvalidEntry
from llm_middleware.signing import Signer
from llm_middleware.testing import FakeClock

from .support.llm import Counter

SECRET = "fuzz-secret"
PROMPT = "Explain cache poisoning"  # a LONG prompt: stored in every tier
SIGNATURE_REASONS = {"unsigned", "unknown_key", "bad_signature"}
SIGNED_HEADER = 1 + 4 + 32  # b"s", key id, HMAC-SHA256
FUZZ = settings(max_examples=60, deadline=None)

Events = list[MutableMapping[str, Any]]


class RecordingBackend(MemoryBackend):
    """A memory tier that remembers the keys deleted from it."""

    def __init__(self, timer: FakeClock) -> None:
        super().__init__(maxsize=100, timer=timer)
        self.deleted: list[str] = []

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)


class Rig:
    """A decorated function over two recording memory tiers, and one stored answer."""

    def __init__(self, *, signed: bool, long_answers: bool = False, is_async: bool = False):
        self.clock = FakeClock(1_000_000.0)
        self.tiers = (RecordingBackend(self.clock), RecordingBackend(self.clock))
        self.cache = MultiLevelCache(
            list(self.tiers), timer=self.clock, secret=SECRET if signed else None
        )
        self.llm = Counter()
        padding = " lorem ipsum dolor" * 400 if long_answers else ""  # > 4 KiB: compressed

        def answer(prompt: str) -> str:
            return self.llm(prompt) + padding

        if is_async:

            @cache_by_intent(cache=self.cache)
            async def achat(prompt: str) -> str:
                return answer(prompt)

            self.chat: Callable[[str], str] = lambda prompt: asyncio.run(achat(prompt))
        else:

            @cache_by_intent(cache=self.cache)
            def chat(prompt: str) -> str:
                return answer(prompt)

            self.chat = chat
        with capture_logs() as events:
            self.chat(PROMPT)
        self.key = str(events[-1]["key"])
        stored = self.tiers[0].get(self.key)
        assert stored is not None and stored == self.tiers[1].get(self.key)
        self.valid = stored

    def plant(self, data: bytes, tier: int) -> None:
        """Empty both tiers, then write ``data`` under the key in ``tier`` (0 or 1)."""
        for backend in self.tiers:
            backend.close()
            backend.deleted.clear()
        self.tiers[tier].set(self.key, data, 3600)

    def call(self) -> tuple[str, Events]:
        with capture_logs() as events:
            answer = self.chat(PROMPT)
        return answer, events


def errors_of(events: Events) -> list[tuple[object, object]]:
    return [(e["tier"], e["reason"]) for e in events if e["event"] == "cache.error"]


def flip(data: bytes, bits: list[int]) -> bytes:
    out = bytearray(data)
    for bit in bits:
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, truncations, appended or replaced tails, and bit flips of ``valid``."""
    size = len(valid)
    return st.one_of(
        st.binary(max_size=2 * size),
        st.integers(0, size - 1).map(lambda n: valid[:n]),
        st.binary(min_size=1, max_size=64).map(lambda tail: valid + tail),
        st.tuples(st.integers(0, size - 1), st.binary(min_size=1, max_size=64)).map(
            lambda cut: valid[: cut[0]] + cut[1]
        ),
        st.lists(st.integers(0, 8 * size - 1), min_size=1, max_size=3, unique=True).map(
            lambda bits: flip(valid, bits)
        ),
    ).filter(lambda data: data != valid)


def what_a_reader_sees(data: bytes) -> Envelope | str:
    """Unsigned cache: the envelope in ``data``, or the reason it is refused."""
    try:
        return Codec().decode(Signer().verify("any key", data))
    except InvalidEntry as exc:
        return exc.reason


@pytest.mark.parametrize("long_answers", [False, True], ids=["plain", "compressed"])
def test_any_change_to_a_signed_entry_is_refused(long_answers: bool) -> None:
    """Signed cache: any altered, cut or random entry is a miss, logged and deleted."""
    rig = Rig(signed=True, long_answers=long_answers)
    assert rig.valid[:1] == b"s"
    assert rig.valid[SIGNED_HEADER : SIGNED_HEADER + 1] == (b"z" if long_answers else b"{")

    @FUZZ
    @given(mutations(rig.valid), st.sampled_from([0, 1]))
    def check(data: bytes, tier: int) -> None:
        rig.plant(data, tier)
        before = rig.llm.calls
        answer, events = rig.call()  # never raises
        assert rig.llm.calls == before + 1 and answer.startswith(f"answer #{rig.llm.calls} to ")
        [(where, reason)] = errors_of(events)
        assert where == f"L{tier + 1}" and reason in SIGNATURE_REASONS
        assert rig.tiers[tier].deleted == [rig.key]

    check()


@pytest.mark.parametrize("long_answers", [False, True], ids=["plain", "compressed"])
def test_unsigned_entries_are_refused_unless_well_formed(long_answers: bool) -> None:
    """Unsigned cache: bad bytes are a logged, deleted miss; well-formed ones are served."""
    rig = Rig(signed=False, long_answers=long_answers)
    assert rig.valid[:1] == (b"z" if long_answers else b"{")

    @FUZZ
    @given(mutations(rig.valid), st.sampled_from([0, 1]))
    def check(data: bytes, tier: int) -> None:
        rig.plant(data, tier)
        seen = what_a_reader_sees(data)
        before = rig.llm.calls
        answer, events = rig.call()  # never raises
        if isinstance(seen, str):  # refused: a miss, logged with the reason, deleted
            assert rig.llm.calls == before + 1 and answer.startswith(f"answer #{rig.llm.calls} to ")
            assert errors_of(events) == [(f"L{tier + 1}", seen)]
            assert rig.tiers[tier].deleted == [rig.key]
        elif seen.expires <= rig.clock():  # well-formed but expired: a plain miss
            assert rig.llm.calls == before + 1 and errors_of(events) == []
        else:  # well-formed: served as stored (only a secret tells it from the original)
            assert rig.llm.calls == before and errors_of(events) == []
            assert type(answer) is str and answer == seen.value

    check()


def known_bad(valid_envelope: bytes) -> dict[str, bytes]:
    """Named bad entries, from an unsigned valid envelope; each value is what is stored."""
    doc = json.loads(valid_envelope)
    return {
        "empty": b"",
        "pickle": pickle.dumps(doc),
        "truncated": valid_envelope[: len(valid_envelope) // 2],
        "json_not_envelope": b'{"value": "x"}',
        "json_array": b'["schema", 1]',
        "old_schema": json.dumps({**doc, "schema": 0}).encode(),
        "future_schema": json.dumps({**doc, "schema": 2}).encode(),
        "names_a_class": json.dumps({**doc, "type": "builtins.eval"}).encode(),
        "model_without_annotation": json.dumps({**doc, "type": "model"}).encode(),
        "not_utf8": b'{"schema": 1, "value": "\xff\xfe"}',
        "compressed_garbage": b"z" + bytes(range(256)),
        "compressed_truncated": b"z" + zlib.compress(valid_envelope)[: len(valid_envelope) // 8],
        "compressed_not_envelope": b"z" + zlib.compress(b"[1, 2, 3]"),
        "compressed_nothing": b"z" + zlib.compress(b""),
        "deep_nesting": b'{"schema":1,"value":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "half_a_signature": b"s" + b"\x01" * 20,
    }


KNOWN_BAD_REASONS: dict[str, set[str]] = {
    "empty": {"empty"},
    "pickle": {"not_envelope"},
    "truncated": {"not_envelope"},
    "json_not_envelope": {"not_envelope"},
    "json_array": {"not_envelope"},
    "old_schema": {"schema_mismatch"},
    "future_schema": {"schema_mismatch"},
    "names_a_class": {"unknown_type"},
    "model_without_annotation": {"unknown_type"},
    "not_utf8": {"not_envelope"},
    "compressed_garbage": {"corrupt_compression"},
    # a cut stream inflates to a cut envelope: refused by zlib or by the JSON parser
    "compressed_truncated": {"corrupt_compression", "not_envelope"},
    "compressed_not_envelope": {"not_envelope"},
    "compressed_nothing": {"corrupt_compression"},
    "deep_nesting": {"not_envelope"},
    "half_a_signature": {"bad_signature"},
}


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize("case", sorted(KNOWN_BAD_REASONS))
def test_known_bad_entries_are_refused_with_their_reason(case: str, driver: str) -> None:
    """Each kind of bad entry, in either tier, sync or async: a miss with its reason."""
    rig = Rig(signed=False, is_async=driver == "async")
    data = known_bad(rig.valid)[case]
    for tier in (0, 1):
        rig.plant(data, tier)
        answer, events = rig.call()
        assert answer == f"answer #{rig.llm.calls} to {PROMPT}"
        [(where, reason)] = errors_of(events)
        assert where == f"L{tier + 1}" and reason in KNOWN_BAD_REASONS[case]
        assert rig.tiers[tier].deleted == [rig.key]


@pytest.mark.parametrize("case", sorted(KNOWN_BAD_REASONS))
def test_known_bad_entries_never_verify_in_a_signed_cache(case: str) -> None:
    """With a secret, every bad entry is refused by its signature, before decoding."""
    rig = Rig(signed=True)
    unsigned = Rig(signed=False).valid
    rig.plant(known_bad(unsigned)[case], 1)
    answer, events = rig.call()
    assert answer == f"answer #2 to {PROMPT}"
    [(tier, reason)] = errors_of(events)
    assert tier == "L2" and reason in SIGNATURE_REASONS
    assert rig.tiers[1].deleted == [rig.key]


@pytest.mark.parametrize("case", sorted(KNOWN_BAD_REASONS))
def test_direct_get_of_a_bad_entry_is_the_default(case: str) -> None:
    """`MultiLevelCache.get` of a bad entry returns the default and deletes the entry."""
    rig = Rig(signed=False)
    rig.plant(known_bad(rig.valid)[case], 1)
    with capture_logs() as events:
        assert rig.cache.get(rig.key, "default") == "default"
    [(where, reason)] = errors_of(events)
    assert where == "L2" and reason in KNOWN_BAD_REASONS[case]
    assert rig.tiers[1].deleted == [rig.key]


def test_an_entry_signed_with_another_secret_is_refused() -> None:
    """An entry signed with a secret this cache does not accept is a miss (``unknown_key``)."""
    rig = Rig(signed=True)
    payload = rig.valid[SIGNED_HEADER:]
    rig.plant(Signer(["someone else's secret"]).sign(rig.key, payload), 0)
    answer, events = rig.call()
    assert answer == f"answer #2 to {PROMPT}"
    assert errors_of(events) == [("L1", "unknown_key")]


def test_without_a_secret_a_rewritten_answer_is_served() -> None:
    """Unsigned cache: a well-formed entry with another answer is served (why to sign)."""
    rig = Rig(signed=False)
    rig.plant(rig.valid.replace(b"answer #1", b"answer #X"), 1)
    answer, events = rig.call()
    assert answer == f"answer #X to {PROMPT}" and rig.llm.calls == 1 and errors_of(events) == []


def _envelope(**fields: object) -> bytes:
    doc = {
        "schema": 1,
        "type": "str",
        "policy": "long",
        "created": 1_000_000.0,
        "expires": 2_000_000.0,
        "duration_ms": 1.0,
        "usage": None,
        "value": "x",
        **fields,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


HOSTILE = {
    "huge_integer_time": _envelope(created=0).replace(b'"created":0', b'"created":' + b"9" * 400),
    "usage_not_an_object": _envelope(usage=[1, 2]),
    "usage_tokens_not_a_number": _envelope(usage={"total_tokens": "many"}),
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(name, id=name) for name in HOSTILE],
)
def test_hostile_entries_in_an_unsigned_cache_never_reach_the_caller(case: str) -> None:
    """Unsigned cache: even a crafted entry is at worst a logged miss, never an exception."""
    rig = Rig(signed=False)
    rig.plant(HOSTILE[case], 1)
    answer, events = rig.call()
    assert answer == f"answer #2 to {PROMPT}"
    [(tier, _reason)] = errors_of(events)
    assert tier == "L2" and rig.tiers[1].deleted == [rig.key]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_entries_never_verify_in_a_signed_cache(case: str) -> None:
    """With a secret the same crafted entries are refused before they are decoded."""
    rig = Rig(signed=True)
    rig.plant(HOSTILE[case], 1)
    answer, events = rig.call()
    assert answer == f"answer #2 to {PROMPT}"
    assert errors_of(events) == [("L2", "unsigned")]


def test_a_decompression_bomb_in_a_tier_is_a_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unsigned cache: an entry inflating past the limit is refused unread (``too_large``)."""
    monkeypatch.setattr(codec, "MAX_DECOMPRESSED_BYTES", 1 << 20)  # 1 MiB instead of 256
    inflate = zlib.compressobj(9)
    bomb = b"z" + inflate.compress(b'{"value":"') + inflate.compress(b" " * (8 << 20))
    bomb += inflate.flush()
    assert len(bomb) < 16 << 10
    rig = Rig(signed=False)
    rig.plant(bomb, 1)
    answer, events = rig.call()
    assert answer == f"answer #2 to {PROMPT}"
    assert errors_of(events) == [("L2", "too_large")] and rig.tiers[1].deleted == [rig.key]


def test_a_signed_entry_moved_to_another_key_is_refused() -> None:
    """A validly signed entry copied under another tenant's key is not served there."""
    clock = FakeClock(1_000_000.0)
    shared = RecordingBackend(clock)
    cache = MultiLevelCache([shared], timer=clock, secret=SECRET)

    @cache_by_intent(cache=cache, namespace=lambda a: a["tenant"])
    def chat(prompt: str, tenant: str) -> str:
        return f"{tenant}'s answer to {prompt}"

    with capture_logs() as events:
        chat(PROMPT, tenant="alice")
    alice_key = str(events[-1]["key"])
    with capture_logs() as events:
        chat(PROMPT, tenant="bob")
    bob_key = str(events[-1]["key"])
    alice_entry = shared.get(alice_key)
    assert alice_entry is not None
    shared.set(bob_key, alice_entry, 3600)  # someone with write access to the shared tier
    with capture_logs() as events:
        answer = chat(PROMPT, tenant="bob")
    assert answer == f"bob's answer to {PROMPT}"
    assert errors_of(events) == [("L1", "bad_signature")]
