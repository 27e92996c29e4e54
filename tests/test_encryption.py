"""Encrypted values in shared tiers: what a reader of the tier sees, rotation, misuse."""

from __future__ import annotations

import asyncio
import base64
import socket
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from llm_middleware import ConfigurationError, MultiLevelCache, cache_by_intent, configure
from llm_middleware.backends.memory import MemoryBackend
from llm_middleware.cli import main
from llm_middleware.encryption import ENCRYPTION_KEY_ENV, generate_key, key_id
from llm_middleware.testing import FakeClock
from tests.support.llm import Counter
from tests.support.memcached_servers import MemcachedServer
from tests.support.redis_servers import RedisServer
from tests.support.second_process import ask_in_a_new_process
from tests.support.server_process import HOST

pytest.importorskip("cryptography")

OLD, NEW, NEWER = (generate_key() for _ in range(3))
ANSWER = "Ann Example's biopsy shows stage II carcinoma; discuss chemotherapy on Monday."


def confidential(prompt: str) -> str:
    """A stand-in LLM whose answers must not be readable in a shared tier."""
    return f"{ANSWER} ({prompt})"


def errors(events: list[dict[str, object]]) -> list[object]:
    return [e["reason"] for e in events if e["event"] == "cache.error"]


def kid_of(data: bytes | None) -> bytes:
    """The key id in a sealed entry's header."""
    assert data is not None and data[:1] == b"e"
    return data[1:5]


def stored_key(chat: object, prompt: str) -> str:
    """The cache key a call of ``chat(prompt)`` uses (read from its trace)."""
    with capture_logs() as events:
        chat(prompt)  # type: ignore[operator]
    return str(events[-1]["key"])


def no_plaintext(raw: bytes) -> None:
    """Nothing of the answer, nor of the envelope around it, is readable in ``raw``."""
    for secret in (b"biopsy", b"carcinoma", b"Ann Example", b"Explain", b"policy", b"usage"):
        assert secret not in raw, secret


def memcached_dump(server: MemcachedServer) -> dict[str, bytes]:
    """Every key and value a memcached server holds, read over its text protocol."""
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        stream = sock.makefile("rwb")
        stream.write(b"lru_crawler metadump all\r\n")
        stream.flush()
        keys = []
        while (line := stream.readline()) != b"END\r\n":
            assert line, "metadump ended early"
            fields = dict(f.split(b"=", 1) for f in line.split())
            keys.append(urllib.parse.unquote(fields[b"key"].decode()))
        values = {}
        for key in keys:
            stream.write(f"get {key}\r\n".encode())
            stream.flush()
            header = stream.readline().split()
            if header[0] == b"VALUE":
                values[key] = stream.read(int(header[3]) + 2)[:-2]
                assert stream.readline() == b"END\r\n"
        return values


def test_memcached_holds_no_plaintext(memcached_server: MemcachedServer) -> None:
    """Every byte a real memcached keeps is ciphertext; the in-process tier stays plain."""
    from llm_middleware.backends.memcached import MemcachedBackend

    memory = MemoryBackend()
    cache = MultiLevelCache(
        [memory, MemcachedBackend(servers=[memcached_server.address])], encryption_key=NEW
    )
    chat = cache_by_intent(cache=cache)(confidential)
    big = "Explain the whole record " + "biopsy carcinoma " * 20_000  # compressed, then sealed
    key, big_key = stored_key(chat, "Explain the biopsy"), stored_key(chat, big)
    dump = memcached_dump(memcached_server)
    assert key in dump and big_key in dump
    for raw in dump.values():
        no_plaintext(raw)
    assert len(dump[big_key]) < len(big) // 20  # compression came before encryption
    assert b"biopsy" in (memory.get(key) or b"")  # memory is not shared: plain
    memory.close()  # the answer now comes from memcached, decrypted
    assert chat("Explain the biopsy") == confidential("Explain the biopsy")
    assert chat(big) == confidential(big)
    assert cache.stats()["hits"] == {"L2": 2}
    cache.close()


def test_redis_holds_no_plaintext(redis_server: RedisServer) -> None:
    """Every value a real Redis keeps is ciphertext, and reads back as the answer."""
    from llm_middleware.backends.redis import RedisBackend

    cache = MultiLevelCache([RedisBackend(url=redis_server.url)], encryption_key=NEW)
    chat = cache_by_intent(cache=cache)(confidential)
    key = stored_key(chat, "Explain the biopsy")
    keys = redis_server.command("KEYS", "*")
    assert key.encode() in keys
    for name in keys:
        no_plaintext(redis_server.command("GET", name))
    assert chat("Explain the biopsy") == confidential("Explain the biopsy")
    assert cache.stats()["hits"] == {"L1": 1}
    cache.close()


def test_entry_moved_to_another_key_is_a_miss(clock: FakeClock, llm: Counter) -> None:
    """The cache key is bound to the ciphertext: an entry copied under another key does not
    decrypt there; it is a miss, logged and deleted."""
    shared = MemoryBackend(timer=clock, shared=True)
    cache = MultiLevelCache([shared], timer=clock, encryption_key=NEW)

    @cache_by_intent(cache=cache)
    def chat(prompt: str) -> str:
        return confidential(llm(prompt))

    alice, bob = stored_key(chat, "Explain Alice's results"), stored_key(chat, "Explain Bob's")
    shared.set(bob, shared.get(alice) or b"", 60)  # Bob's key now holds Alice's entry
    with capture_logs() as events:
        assert chat("Explain Bob's") == confidential("answer #3 to Explain Bob's")
    assert errors(events) == ["decrypt_failed"] and llm.calls == 3
    assert kid_of(shared.get(bob)) == key_id(base64.b64decode(NEW))  # replaced by Bob's own


def test_changed_byte_and_plain_entry_are_misses(clock: FakeClock, llm: Counter) -> None:
    """A flipped ciphertext byte does not decrypt; a plain entry in an encrypted tier is
    refused (``unencrypted``): both are misses."""
    shared = MemoryBackend(timer=clock, shared=True)

    def ask(prompt: str) -> str:
        return confidential(llm(prompt))

    # one name for both: the same function, under the same key in either cache
    plain = cache_by_intent(cache=MultiLevelCache([shared], timer=clock), name="ask")(ask)
    key = stored_key(plain, "Explain it")
    sealed_cache = MultiLevelCache([shared], timer=clock, encryption_key=NEW)
    sealed = cache_by_intent(cache=sealed_cache, name="ask")(ask)
    with capture_logs() as events:
        sealed("Explain it")
    data = bytearray(shared.get(key) or b"")
    data[-1] ^= 1
    shared.set(key, bytes(data), 60)
    with capture_logs() as more:
        assert sealed("Explain it") == confidential("answer #3 to Explain it")
    assert errors(events) + errors(more) == ["unencrypted", "decrypt_failed"]
    assert llm.calls == 3


def mutations(original: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, a cut, appended bytes, or flipped bits of ``original``.

    Positions are drawn from a fixed range and folded into the entry's length, so the
    strategy has the same shape whatever that length (it varies with the stored timings:
    hypothesis replays a failing example only when its draws mean the same thing)."""
    position = st.integers(0, 1 << 16).map(lambda i: i % len(original))
    flip = st.tuples(position, st.integers(1, 255)).map(
        lambda f: original[: f[0]] + bytes([original[f[0]] ^ f[1]]) + original[f[0] + 1 :]
    )
    return st.one_of(
        st.binary(max_size=200).map(lambda b: b"e" + b),
        position.map(lambda n: original[:n]),
        st.binary(min_size=1, max_size=50).map(lambda b: original + b),
        flip,
    )


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_change_to_a_sealed_entry_is_a_miss(data: st.DataObject) -> None:
    """No change to a sealed entry survives: it is refused before it is decoded."""
    clock = FakeClock(1_000_000.0)
    shared = MemoryBackend(timer=clock, shared=True)
    llm = Counter()  # one per example (hypothesis runs the test many times)

    @cache_by_intent(cache=MultiLevelCache([shared], timer=clock, encryption_key=NEW))
    def chat(prompt: str) -> str:
        return confidential(llm(prompt))

    key = stored_key(chat, "Explain tampering")
    original = shared.get(key) or b""
    mutated = data.draw(mutations(original).filter(lambda m: m != original))
    shared.set(key, mutated, 60)
    with capture_logs() as events:
        assert chat("Explain tampering") == confidential("answer #2 to Explain tampering")
    assert errors(events) in (["decrypt_failed"], ["unknown_key"], ["unencrypted"])


def test_rotation(clock: FakeClock, llm: Counter) -> None:
    """An entry sealed under an older listed key is a hit, sealed again under the newest
    once; once its key leaves the list it is a miss (``unknown_key``), deleted."""
    shared = MemoryBackend(timer=clock, shared=True)

    def with_keys(keys: object) -> object:
        cache = MultiLevelCache([shared], timer=clock, encryption_key=keys)  # type: ignore[arg-type]

        @cache_by_intent(cache=cache, name="chat")  # one function, whatever the cache
        def chat(prompt: str) -> str:
            return confidential(llm(prompt))

        return chat

    key = stored_key(with_keys(OLD), "Explain rotation")
    rotated = with_keys(f"{NEW},{OLD}")
    answer = confidential("answer #1 to Explain rotation")
    assert rotated("Explain rotation") == answer  # type: ignore[operator]
    resealed = shared.get(key)
    assert kid_of(resealed) == key_id(base64.b64decode(NEW)) and llm.calls == 1
    rotated("Explain rotation")  # type: ignore[operator]
    assert shared.get(key) == resealed  # once: a hit under the newest key is not rewritten
    with capture_logs() as events:
        with_keys([NEWER])("Explain rotation")  # type: ignore[operator]
    assert errors(events) == ["unknown_key"] and llm.calls == 2
    assert kid_of(shared.get(key)) == key_id(base64.b64decode(NEWER))


def test_rotation_across_processes(
    memcached_server: MemcachedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes configured by ``LLM_MIDDLEWARE_ENCRYPTION_KEY`` share encrypted answers
    while their lists overlap; a process without the writer's key asks again."""
    from llm_middleware.backends.memcached import MemcachedBackend

    def ask(keys: str) -> dict[str, object]:
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, keys)
        return ask_in_a_new_process(MemcachedBackend, servers=[memcached_server.address])

    first = ask(OLD)
    assert first["calls"] == 1
    kids = {kid_of(v) for v in memcached_dump(memcached_server).values()}
    assert kids == {key_id(base64.b64decode(OLD))}
    second = ask(f"{NEW},{OLD}")  # rotated: the old entry is a hit, sealed again under NEW
    assert (second["calls"], second["hits"], second["answer"]) == (0, {"L2": 1}, first["answer"])
    third = ask(NEW)  # OLD retired: the entry is already under NEW
    assert (third["calls"], third["hits"]) == (0, {"L2": 1})
    fourth = ask(NEWER)  # NEW retired too: unknown key, a miss
    assert (fourth["calls"], fourth["hits"]) == (1, {})
    for raw in memcached_dump(memcached_server).values():
        no_plaintext(raw)


def test_signing_and_encryption_compose(clock: FakeClock) -> None:
    """With a secret too, the in-process tier's entries are signed and the shared tier's
    sealed (the AEAD tag authenticates them); a promotion re-signs for the upper tier."""
    memory, shared = MemoryBackend(timer=clock), MemoryBackend(timer=clock, shared=True)
    cache = MultiLevelCache([memory, shared], timer=clock, secret="s3cret", encryption_key=NEW)
    chat = cache_by_intent(cache=cache)(confidential)
    key = stored_key(chat, "Explain composition")
    assert (memory.get(key) or b"")[:1] == b"s" and (shared.get(key) or b"")[:1] == b"e"
    memory.close()
    assert chat("Explain composition") == confidential("Explain composition")
    assert (memory.get(key) or b"")[:1] == b"s"  # promoted, signed again
    assert cache.stats()["hits"] == {"L2": 1}


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("env", "not base64!", f"{ENCRYPTION_KEY_ENV}: key 1 of 1 is not base64"),
        ("env", f"{NEW},{base64.b64encode(b'short').decode()}", "key 2 of 2 decodes to 5 bytes"),
        ("arg", base64.b64encode(bytes(16)).decode(), "encryption_key: key 1 of 1 decodes to 16"),
        ("arg", NEW.encode(), "encryption_key: key 1 of 1 is 44 bytes"),
        ("arg", [NEW, ""], "encryption_key: key 2 of 2 is empty"),
    ],
)
def test_bad_keys_fail_at_configuration(
    monkeypatch: pytest.MonkeyPatch, where: str, value: object, message: str
) -> None:
    """A malformed or wrong-length key raises when the cache is built, naming its source."""
    if where == "env":
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, str(value))
        value = None
    with pytest.raises(ConfigurationError, match=message) as raised:
        MultiLevelCache([MemoryBackend()], encryption_key=value)  # type: ignore[arg-type]
    assert NEW not in str(raised.value)  # a key is never echoed


def test_configure_and_keygen(capsys: pytest.CaptureFixture[str]) -> None:
    """``llm-middleware keygen`` prints a fresh 32-byte key that ``configure`` accepts."""
    assert main(["keygen"]) == 0
    assert main(["keygen"]) == 0
    one, two = capsys.readouterr().out.split()
    assert one != two and len(base64.b64decode(one, validate=True)) == 32
    cache = configure(tiers="memory://?shared=true", encryption_key=one)
    chat = cache_by_intent(confidential)
    key = stored_key(chat, "Explain keys")
    assert kid_of(cache.backends[0].get(key)) == key_id(base64.b64decode(one))
    with pytest.raises(ConfigurationError, match="pass both"):
        configure(encryption_key=one)


def test_async_calls_encrypt_too(clock: FakeClock, llm: Counter) -> None:
    """An async function's answers are sealed and opened the same way."""
    shared = MemoryBackend(timer=clock, shared=True)
    cache = MultiLevelCache([shared], timer=clock, encryption_key=NEW)

    @cache_by_intent(cache=cache)
    async def chat(prompt: str) -> str:
        return confidential(llm(prompt))

    answer = confidential("answer #1 to Explain async")
    with capture_logs() as events:
        assert asyncio.run(chat("Explain async")) == answer
    no_plaintext(shared.get(str(events[-1]["key"])) or b"")
    assert asyncio.run(chat("Explain async")) == answer
    assert llm.calls == 1


class DictBackend:
    """A plugin backend that does not say whether it is shared."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def close(self) -> None:
        self.data.clear()


def test_a_backend_that_does_not_say_is_encrypted() -> None:
    """Without a ``shared`` attribute a tier is taken as shared: its entries are sealed."""
    plugin = DictBackend()
    chat = cache_by_intent(cache=MultiLevelCache([plugin], encryption_key=NEW))(confidential)
    key = stored_key(chat, "Explain plugins")
    no_plaintext(plugin.data[key])
    assert chat("Explain plugins") == confidential("Explain plugins")
