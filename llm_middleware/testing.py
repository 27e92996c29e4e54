"""Test helpers for backend authors: the `BackendContract` suite and a `FakeClock`.

Every backend, built-in or plugin, runs the same contract by subclassing it in a test module::

    from llm_middleware.testing import BackendContract

    class TestMyBackend(BackendContract):
        fake_clock = True                      # my backend takes timer=

        def make_backend(self, timer):
            return MyBackend(maxsize=10_000, timer=timer)

``make_backend(timer)`` gets a `FakeClock` when ``fake_clock`` is true (TTL tests then advance
it instead of sleeping) and ``None`` otherwise (TTL tests then wait about ``real_ttl`` seconds:
memcached counts whole seconds). A backend that needs a fixture (a server) overrides the
``backend`` fixture instead of ``make_backend``. The backend must hold at least 1,000 entries
and must not cap lifetimes below 1,000 seconds, or the tests would see evictions.

Empty values: ``b""`` is a value like any other and must come back as ``b""``, never ``None``
(the core never stores one, but a backend that confused the two would turn hits into misses).

This module imports pytest at the top: it is meant to be imported by test suites only.
Install it with the ``testing`` extra: ``pip install "llm-middleware[testing]"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

try:
    import pytest
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a venv without pytest
    if exc.name != "pytest":
        raise
    raise ModuleNotFoundError(
        "llm_middleware.testing needs pytest, which the 'testing' extra installs: "
        'pip install "llm-middleware[testing]"',
        name="pytest",
    ) from exc

from llm_middleware.contract import AsyncBackend, AtomicAdd, Backend

__all__ = ["BackendContract", "FakeClock"]

ASYNC_TWINS = ("aget", "aset", "adelete", "aclose")
PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))  # printable ASCII without space


class FakeClock:
    """A hand-driven clock for ``timer=`` arguments: call it for the time, `advance` it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds`` (never backward)."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back: advance({seconds})")
        with self._lock:
            self._now += seconds


class BackendContract:
    """The behaviour every `Backend` owes the cache; subclass it as ``Test<Name>``."""

    #: ``True``: `make_backend` gets a `FakeClock` to pass as the backend's timer.
    fake_clock: ClassVar[bool] = False
    #: The short lifetime used by the real-clock TTL test, in seconds.
    real_ttl: ClassVar[float] = 1.0
    #: How long past ``real_ttl`` an entry may linger (coarse server clocks) before failing.
    expiry_grace: ClassVar[float] = 2.0
    #: Largest value the large-value test stores (also capped by ``max_value_bytes``).
    large_value_bytes: ClassVar[int] = 100_000
    #: Children the fork test forks, and the seconds each may take before it fails.
    forks: ClassVar[int] = 5
    fork_timeout: ClassVar[float] = 10.0
    #: ``True``: the backend has the atomic ``add`` of `AtomicAdd` (checked both ways).
    atomic_add: ClassVar[bool] = False

    def same_store(self, backend: Backend) -> str | None:
        """How another process reaches the store ``backend`` uses: a backend URL
        (``"memcached://127.0.0.1:11211"``); needed with ``atomic_add``, so that ``add``
        is checked across processes."""
        return None

    def stalled(self, backend: Backend) -> contextlib.AbstractContextManager[None] | None:
        """A context in which the store does not answer (a paused server), for the
        "async never blocks the loop" test; ``None`` for an in-process store."""
        return None

    def make_backend(self, timer: Callable[[], float] | None) -> Backend:
        """Return a fresh, empty backend; ``timer`` is a `FakeClock` iff ``fake_clock``."""
        raise NotImplementedError(f"{type(self).__name__}: define make_backend or `backend`")

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The fake clock handed to `make_backend` (unused without ``fake_clock``)."""
        return FakeClock(start=1_000.0)

    @pytest.fixture
    def backend(self, clock: FakeClock) -> Iterator[Backend]:
        """A fresh backend from `make_backend`, closed after the test."""
        backend = self.make_backend(clock if self.fake_clock else None)
        yield backend
        backend.close()

    def test_is_a_backend(self, backend: Backend) -> None:
        """It satisfies the `Backend` protocol; a ``max_value_bytes`` is a positive int."""
        assert isinstance(backend, Backend)
        limit = getattr(backend, "max_value_bytes", None)
        assert limit is None or (isinstance(limit, int) and limit > 0)

    def test_missing_key_is_none(self, backend: Backend) -> None:
        """A key never stored reads as ``None``."""
        assert backend.get("contract:missing") is None

    def test_round_trip(self, backend: Backend) -> None:
        """A stored value reads back equal, as ``bytes``."""
        backend.set("contract:k", b"value", 60)
        value = backend.get("contract:k")
        assert value == b"value"
        assert isinstance(value, bytes)

    def test_overwrite(self, backend: Backend) -> None:
        """A second ``set`` of a key replaces the first value."""
        backend.set("contract:k", b"first", 60)
        backend.set("contract:k", b"second", 60)
        assert backend.get("contract:k") == b"second"

    def test_keys_are_distinct(self, backend: Backend) -> None:
        """Keys differing in case or by one character hold separate values."""
        keys = ["contract:key", "contract:KEY", "contract:key1", "contract:key2"]
        for key in keys:
            backend.set(key, key.encode(), 60)
        assert [backend.get(key) for key in keys] == [key.encode() for key in keys]

    def test_delete(self, backend: Backend) -> None:
        """``delete`` removes a key; other keys stay."""
        backend.set("contract:gone", b"a", 60)
        backend.set("contract:kept", b"b", 60)
        backend.delete("contract:gone")
        assert backend.get("contract:gone") is None
        assert backend.get("contract:kept") == b"b"

    def test_delete_missing_key(self, backend: Backend) -> None:
        """Deleting a key that is absent is not an error."""
        backend.delete("contract:never-set")
        assert backend.get("contract:never-set") is None

    def test_binary_values(self, backend: Backend) -> None:
        """All 256 byte values, CR/LF included, survive a round trip."""
        value = bytes(range(256)) + b"\r\n\x00END\r\n"
        backend.set("contract:binary", value, 60)
        assert backend.get("contract:binary") == value

    def test_empty_value(self, backend: Backend) -> None:
        """``b""`` is stored and read back as ``b""``, not as a miss."""
        backend.set("contract:empty", b"", 60)
        assert backend.get("contract:empty") == b""

    def test_large_value(self, backend: Backend) -> None:
        """A value of about 100 kB (or the backend's ``max_value_bytes``) round-trips intact."""
        limit = getattr(backend, "max_value_bytes", None) or self.large_value_bytes
        size = min(self.large_value_bytes, limit)
        value = bytes(i % 251 for i in range(size))
        backend.set("contract:large", value, 60)
        assert backend.get("contract:large") == value

    def test_longest_key(self, backend: Backend) -> None:
        """Keys of 250 printable ASCII bytes work and stay distinct in their last byte."""
        stem = (PRINTABLE * 3)[:249]
        backend.set(stem + "a", b"a", 60)
        backend.set(stem + "b", b"b", 60)
        assert (backend.get(stem + "a"), backend.get(stem + "b")) == (b"a", b"b")

    def test_ttl_expiry(self, backend: Backend, clock: FakeClock) -> None:
        """An entry is served within its ttl and gone after it; a longer-lived one stays."""
        if self.fake_clock:
            backend.set("contract:short", b"s", 2.5)
            backend.set("contract:long", b"l", 100)
            clock.advance(2.0)
            assert backend.get("contract:short") == b"s"
            clock.advance(2.0)
            assert backend.get("contract:short") is None
            assert backend.get("contract:long") == b"l"
            clock.advance(100.0)
            assert backend.get("contract:long") is None
            return
        backend.set("contract:short", b"s", self.real_ttl)
        backend.set("contract:long", b"l", 600)
        deadline = time.monotonic() + self.real_ttl + self.expiry_grace
        while backend.get("contract:short") is not None:
            assert time.monotonic() < deadline, f"entry outlived ttl={self.real_ttl}"
            time.sleep(0.05)
        assert backend.get("contract:long") == b"l"

    def test_threads(self, backend: Backend) -> None:
        """8 threads on distinct and shared keys see only values that were written."""
        shared_values = {f"shared-{n}".encode() for n in range(8)}
        backend.set("contract:shared", b"shared-0", 60)
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                barrier.wait(timeout=10)
                for i in range(50):
                    key, value = f"contract:t{n}:{i}", f"{n}:{i}".encode() * 20
                    backend.set(key, value, 60)
                    assert backend.get(key) == value
                    backend.set("contract:shared", f"shared-{n}".encode(), 60)
                    assert backend.get("contract:shared") in shared_values
                    if i % 5 == 0:
                        backend.delete(key)
                        assert backend.get(key) is None
            except BaseException as exc:  # collected, re-raised in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors[0]
        assert not any(thread.is_alive() for thread in threads)
        assert backend.get("contract:t3:7") == b"3:7" * 20

    def test_async_twins(self, backend: Backend) -> None:
        """``aget``/``aset``/``adelete``/``aclose`` behave like the sync methods, from asyncio."""
        present = [name for name in ASYNC_TWINS if hasattr(backend, name)]
        if not present:
            pytest.skip("no async twins: the core runs this backend in a worker thread")
        assert isinstance(backend, AsyncBackend), f"only some async twins defined: {present}"
        abackend = backend

        async def scenario() -> None:
            assert await abackend.aget("contract:async") is None
            await abackend.aset("contract:async", b"a", 60)
            assert await abackend.aget("contract:async") == b"a"
            keys = [f"contract:async{i}" for i in range(20)]
            await asyncio.gather(*(abackend.aset(k, k.encode(), 60) for k in keys))
            assert await asyncio.gather(*(abackend.aget(k) for k in keys)) == [
                k.encode() for k in keys
            ]
            await abackend.adelete("contract:async")
            assert await abackend.aget("contract:async") is None
            await abackend.aclose()

        asyncio.run(scenario())

    def test_fork(self, backend: Backend) -> None:
        """A child forked while another thread is inside the backend uses it at once: its
        locks and connections are its own (``os.register_at_fork``). An operation may
        fail (a shared store busy with the parent's writes) but none may hang: each
        child must store and read back a value of its own within ``fork_timeout``."""
        if not hasattr(os, "fork"):
            pytest.skip("no fork on this platform")
        stop = threading.Event()

        def busy() -> None:  # keeps the backend's locks and connections in use
            while not stop.is_set():
                backend.set("contract:busy", b"busy", 600)
                backend.get("contract:busy")

        worker = threading.Thread(target=busy, daemon=True)
        worker.start()
        pids = []
        try:
            for n in range(self.forks):
                with warnings.catch_warnings():  # "multi-threaded, fork() may deadlock"
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pid = os.fork()
                if pid == 0:  # the child: report by exit status, never return to pytest
                    os._exit(self._in_forked_child(backend, n))
                pids.append(pid)
                time.sleep(0.01)
        finally:
            stop.set()
            worker.join(timeout=30)
        statuses = [os.waitpid(pid, 0)[1] for pid in pids]
        assert statuses == [0] * len(pids), [
            "ok"
            if s == 0
            else f"hung (killed by signal {os.WTERMSIG(s)})"
            if os.WIFSIGNALED(s)
            else "failed"
            for s in statuses
        ]

    def _in_forked_child(self, backend: Backend, n: int) -> int:
        """0 once a value of the child's own round-trips; a hang ends as SIGALRM."""
        try:
            signal.alarm(max(1, int(self.fork_timeout)))
            key, value = f"contract:child{n}", f"child {n}".encode()
            deadline = time.monotonic() + self.fork_timeout
            while time.monotonic() < deadline:
                try:
                    backend.set(key, value, 600)
                    if backend.get(key) == value:
                        return 0
                except Exception:  # busy with the parent's writes: try again
                    time.sleep(0.05)
            return 2
        except BaseException:
            return 3

    def test_close(self, backend: Backend) -> None:
        """``close`` succeeds after use, and closing twice is harmless."""
        backend.set("contract:k", b"v", 60)
        backend.close()
        backend.close()

    def test_async_never_blocks_the_loop(self, backend: Backend) -> None:
        """While a read waits on the store (stalled where `stalled` can), the event
        loop keeps running other tasks: through the async twin, or the worker thread
        the core runs a sync backend in."""
        from llm_middleware._io import Tier  # the core's own async path to a backend

        tier = Tier("contract", backend)
        backend.set("contract:loop", b"v", 60)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        async def read() -> object:
            task = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            try:
                return await tier.aget("contract:loop")
            except Exception as exc:  # a stalled store times out: that is its answer
                return exc
            finally:
                task.cancel()

        stall = self.stalled(backend)
        if stall is None:
            assert asyncio.run(read()) == b"v"
            assert ticks >= 1
            return
        with stall:
            asyncio.run(read())
        assert ticks >= 5, f"the loop ran {ticks} ticks while a read waited"

    def test_atomic_add_is_declared(self, backend: Backend) -> None:
        """``atomic_add`` says whether the backend has ``add``: the cache takes its
        cross-process locks only in a tier that does."""
        assert isinstance(backend, AtomicAdd) is self.atomic_add

    def test_atomic_add_under_threads(self, backend: Backend) -> None:
        """Of 8 threads adding one key at once, exactly one stores; a present key is
        never replaced; after ``delete`` the key can be added again."""
        if not self.atomic_add:
            assert not hasattr(backend, "add")
            return
        adder: Any = backend
        barrier = threading.Barrier(8)
        won: list[bool] = []

        def add(n: int) -> None:
            barrier.wait(timeout=10)
            won.append(adder.add("contract:add", f"{n}".encode(), 60))

        threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(won) == [False] * 7 + [True]
        stored = backend.get("contract:add")
        assert adder.add("contract:add", b"again", 60) is False
        assert backend.get("contract:add") == stored
        backend.delete("contract:add")
        assert adder.add("contract:add", b"after", 60) is True

    def test_atomic_add_across_processes(self, backend: Backend) -> None:
        """Of 4 processes adding one key at once, exactly one stores."""
        if not self.atomic_add:
            assert not hasattr(backend, "add")
            return
        url = self.same_store(backend)
        assert url is not None, "atomic_add: define same_store to reach the store"
        # fork where there is one (fast); each child makes its own backend from the URL
        methods = multiprocessing.get_all_start_methods()
        context: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        start = context.Event()
        results = context.Queue()
        children = [
            context.Process(target=_add_in_child, args=(url, start, results, n)) for n in range(4)
        ]
        for child in children:
            child.start()
        start.set()
        won = [results.get(timeout=60) for _ in children]
        for child in children:
            child.join(timeout=30)
        assert sorted(won) == [False] * 3 + [True]


def _add_in_child(url: str, start: Any, results: Any, n: int) -> None:
    """In a child process: the backend of ``url``, then, at the start, one ``add``."""
    from llm_middleware import backend_from_url

    backend: Any = backend_from_url(url)
    start.wait(30)
    results.put(bool(backend.add("contract:add-processes", f"{n}".encode(), 60)))
    backend.close()
