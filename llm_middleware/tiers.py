"""`MultiLevelCache`: ordered tiers, small-and-fast first, with promotion.

The lookup and store sequences are written once, as flows (see ``_io``): a hit
in tier *k* is copied to tiers 1..k-1 with its *remaining* lifetime; a store
writes the first *depth* tiers. Backend failures never escape: they are misses
or skipped stores, each with a ``cache.error`` event.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._io import Flow, Tier, TierOp, run_async, run_sync
from .codec import Codec, Envelope, InvalidEntry, UnsupportedValue
from .contract import Backend
from .encryption import EncryptionKeys, Sealer, is_sealed, parse_keys
from .errors import ConfigurationError
from .generations import Generations
from .policy import CachePolicy
from .signing import Signer
from .stats import CacheStats, Recorders, StatsSnapshot
from .trace import Trace

__all__ = ["Entry", "Hit", "MultiLevelCache"]

SECRET_ENV = "LLM_MIDDLEWARE_SECRET"


def _secrets(secret: str | bytes | Sequence[str | bytes] | None) -> list[str | bytes]:
    """The accepted secrets, newest first: given, or ``LLM_MIDDLEWARE_SECRET``
    (comma-separated, the first one signs)."""
    if secret is None:
        secret = [s for s in os.environ.get(SECRET_ENV, "").split(",") if s]
    if isinstance(secret, (str, bytes)):
        secret = [secret]
    return list(secret)


class Hit(NamedTuple):
    """A lookup's answer: the envelope, the tier it came from, and whether it is past
    its lifetime (served stale within a grace window while it is refreshed)."""

    envelope: Envelope
    tier: str
    stale: bool = False


Entry = tuple[Envelope, bytes, bool, "int | None"]
"""A tier's entry that answers a call (`MultiLevelCache.entry`): its envelope; the
codec's bytes (decrypted, or with the signature taken off); whether it was sealed under
a retired encryption key (to be written again under the newest); the size it inflated
to (``None``: not compressed). A plain tuple: it is made on every hit."""


def _shared(backend: Backend) -> bool:
    """Whether a tier is reachable from outside this process (encrypted when the cache
    has a key): the backend's ``shared`` attribute, true when it does not say."""
    return getattr(backend, "shared", True) is not False


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class MultiLevelCache:
    """Ordered tiers of `Backend` s: tier 1 is checked first.

    ``timer`` (seconds, wall clock by default) dates entries; tests pass the same
    fake clock to the cache and its backends. ``names`` label the tiers in events
    and stats (``L1``, ``L2``, ... by default). ``secret`` (or the environment
    variable ``LLM_MIDDLEWARE_SECRET``) signs every stored entry with HMAC-SHA256:
    a list of accepted secrets, newest first, the first one signing; an entry
    that fails verification is a miss, deleted, and logged. ``encryption_key`` (or
    ``LLM_MIDDLEWARE_ENCRYPTION_KEY``): base64 keys, newest first, that encrypt every
    entry written to a shared tier (see ``llm_middleware.encryption``).
    ``generation_check_s``: how often (at most, in seconds of ``timer``) this
    process reads the generations a `clear` elsewhere may have changed.
    """

    def __init__(
        self,
        tiers: Sequence[Backend],
        *,
        names: Sequence[str] | None = None,
        timer: Callable[[], float] = time.time,
        secret: str | bytes | Sequence[str | bytes] | None = None,
        encryption_key: EncryptionKeys | None = None,
        generation_check_s: float = 5.0,
    ) -> None:
        if not tiers:
            raise ConfigurationError("MultiLevelCache needs at least one tier")
        names = list(names) if names is not None else [f"L{i + 1}" for i in range(len(tiers))]
        if len(names) != len(tiers) or len(set(names)) != len(names):
            raise ConfigurationError(f"need one distinct name per tier, got {names!r}")
        for backend in tiers:
            missing = [m for m in ("get", "set", "delete", "close") if not hasattr(backend, m)]
            if missing:
                raise ConfigurationError(f"{backend!r} is not a Backend: no {', '.join(missing)}")
        self.tiers: tuple[Tier, ...] = tuple(
            Tier(n, b, i) for i, (n, b) in enumerate(zip(names, tiers, strict=True))
        )
        self.timer = timer
        try:
            self.generations = Generations(self.tiers[-1], generation_check_s, timer)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.codec = Codec()
        try:
            self.signer = Signer(_secrets(secret))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.sealer = Sealer(parse_keys(encryption_key))
        # by tier index: whether entries written there are sealed
        self._sealed = tuple(self.sealer.enabled and _shared(t.backend) for t in self.tiers)
        self._sealing = self.sealer.enabled  # read on every hit: an attribute, not a property
        self._stats = CacheStats()
        self.recorder = self._stats  # the counters this cache's calls update

    def __repr__(self) -> str:
        inner = ", ".join(f"{t.name}={t.backend!r}" for t in self.tiers)
        return f"MultiLevelCache({inner})"

    @property
    def backends(self) -> tuple[Backend, ...]:
        return tuple(t.backend for t in self.tiers)

    # -- the one rule for an answer ---------------------------------------------

    def entry(
        self, index: int, key: str, data: bytes | None, codec: Codec, now: float, grace: float = 0.0
    ) -> Entry | None:
        """Whether ``data``, read from tier ``index`` under (physical) ``key``, answers a
        call: an `Entry` when it is a valid entry of the current schema (decrypted where
        sealed, else its signature checked) up to ``grace`` seconds past its lifetime at
        ``now``; ``None`` when absent or expired. Raises `InvalidEntry` for anything
        else. Every hit, whichever way the call came, passed here: the only place that
        decides an entry is an answer."""
        if data is None:
            return None
        if self._sealing and (self._sealed[index] or is_sealed(data)):
            payload, stale_key = self.sealer.open(key, data)
        else:
            payload, stale_key = self.signer.verify(key, data), False
        if index:  # what it inflated to limits the tiers it is promoted to
            envelope, inflated = codec.decode_sized(payload, self.tiers[index].inflate_limit)
        else:
            envelope, inflated = codec.decode(payload, self.tiers[0].inflate_limit), None
        if envelope.expires + grace <= now:
            return None
        return envelope, payload, stale_key, inflated

    def discard(self, tier: Tier, key: str, exc: InvalidEntry, trace: Trace) -> Flow[None]:
        """What follows an invalid entry found in ``tier``: counted and logged
        (``cache.error`` with its ``reason``), then deleted."""
        self.report_error(trace, tier, exc, exc.reason)
        yield from self._delete_from(tier, key, trace)

    # -- flows --------------------------------------------------------------------

    def lookup(
        self,
        key: str,
        codec: Codec,
        trace: Trace,
        *,
        grace: float = 0.0,
        start: int = 0,
    ) -> Flow[Hit | None]:
        """Check the tiers in order (from tier ``start``); promote a lower-tier hit
        upwards. An entry up to ``grace`` seconds past its lifetime is a stale hit."""
        key = yield from self.physical(key, trace)
        now = self.timer()
        debugging = trace.wants(logging.DEBUG)
        for index, tier in enumerate(self.tiers[start:], start):
            data: bytes | None
            try:
                data = yield TierOp(tier, "get", key)
            except Exception as exc:
                self.report_error(trace, tier, exc, "backend")
                continue
            try:
                found = self.entry(index, key, data, codec, now, grace)
            except InvalidEntry as exc:
                found = None
                yield from self.discard(tier, key, exc, trace)
            if found is None:
                if debugging:
                    trace.debug("cache.lookup", tier=tier.name, hit=False)
                continue
            envelope, payload, stale_key, inflated = found
            stale = envelope.expires <= now
            if debugging:
                trace.debug(
                    "cache.lookup", tier=tier.name, hit=True, **({"stale": True} if stale else {})
                )
            remaining = envelope.expires + grace - now
            if stale_key:  # sealed under an older key: once more under the newest
                yield from self._write((tier,), key, payload, remaining, trace)
            if index and data is not None:
                plain = None if is_sealed(data) else data
                yield from self._promote(key, payload, remaining, index, trace, plain, inflated)
            return Hit(envelope, tier.name, stale)
        return None

    def _promote(
        self,
        key: str,
        payload: bytes,
        ttl: float,
        index: int,
        trace: Trace,
        plain: bytes | None,
        inflated: int | None,
    ) -> Flow[None]:
        to_tiers = yield from self._write(
            self.tiers[:index], key, payload, ttl, trace, plain, inflated
        )
        if to_tiers:
            trace.stats.promotion()
            trace.debug("cache.promote", from_tier=self.tiers[index].name, to_tiers=to_tiers)

    def store(
        self,
        key: str,
        data: bytes,
        ttl: float,
        depth: int,
        trace: Trace,
        inflated: int | None = None,
    ) -> Flow[None]:
        """Write ``data`` (the codec's bytes) to the first ``depth`` tiers for ``ttl``
        seconds: encrypted in shared tiers when the cache has a key, else signed when it
        has a secret. ``inflated``: the size compressed ``data`` inflates to (tiers
        whose inflation limit is lower are skipped, ``too_large``)."""
        key = yield from self.physical(key, trace)
        stored = yield from self._write(self.tiers[:depth], key, data, ttl, trace, None, inflated)
        if stored:
            trace.stats.store()
        trace.debug("cache.store", tiers=stored, ttl=ttl)

    def _write(
        self,
        tiers: Sequence[Tier],
        key: str,
        payload: bytes,
        ttl: float,
        trace: Trace,
        plain: bytes | None = None,
        inflated: int | None = None,
    ) -> Flow[list[str]]:
        """Write the codec's bytes ``payload`` to ``tiers``: sealed for a sealed tier,
        else signed (``plain``: that signed form, when the caller has it)."""
        written = []
        sealed = None
        for tier in tiers:
            if self._sealed[tier.index]:
                data = sealed = sealed or self.sealer.seal(key, payload)
            else:
                data = plain = plain or self.signer.sign(key, payload)
            size, limit = len(data), tier.max_value_bytes
            if inflated is not None and inflated > tier.inflate_limit:
                size, limit = inflated, tier.inflate_limit  # its reads would refuse it
            if limit is not None and size > limit:
                trace.stats.bypass("too_large", whole_call=False)
                trace.warning(
                    "cache.bypass", reason="too_large", tier=tier.name, size=size, limit=limit
                )
                continue
            try:
                yield TierOp(tier, "set", key, data, ttl)
            except Exception as exc:
                self.report_error(trace, tier, exc, "backend")
                continue
            written.append(tier.name)
        return written

    def _delete_from(self, tier: Tier, key: str, trace: Trace) -> Flow[None]:
        try:
            yield TierOp(tier, "delete", key)
        except Exception as exc:
            self.report_error(trace, tier, exc, "backend")

    def report_error(self, trace: Trace, tier: Tier, exc: BaseException, reason: str) -> None:
        """Count and log a tier's failure (``cache.error``)."""
        trace.stats.error(tier.name)
        trace.warning("cache.error", tier=tier.name, error=_error_text(exc), reason=reason)

    def lock_tier(self, depth: int | None) -> Tier | None:
        """The tier that holds cross-process locks: the last tier with an atomic
        ``add`` among the first ``depth`` (those an answer is stored in), if any."""
        reached = self.tiers if depth is None else self.tiers[:depth]
        return next((t for t in reversed(reached) if t.aadd is not None), None)

    def unlock(self, held: tuple[Tier, str], trace: Trace) -> Flow[None]:
        """Release a cross-process lock taken with `lock_tier`."""
        tier, lock_key = held
        yield from self._delete_from(tier, lock_key, trace)
        trace.debug("cache.lock", tier=tier.name, released=True)

    def _get_flow(self, key: str, default: Any) -> Flow[Any]:
        trace = Trace("MultiLevelCache.get", key, Recorders(self._stats))
        hit = yield from self.lookup(key, self.codec, trace)
        if hit is None:
            trace.stats.miss()
            return default
        trace.stats.hit(hit.tier, 0.0, 0)
        return hit.envelope.value

    def _set_flow(
        self, key: str, value: Any, ttl: float, policy: CachePolicy, tiers: int | None
    ) -> Flow[None]:
        if ttl <= 0 or policy is CachePolicy.NEVER:
            return
        trace = Trace("MultiLevelCache.set", key, Recorders(self._stats))
        try:
            data, _, inflated = self.codec.encode_sized(
                value, policy=policy.value, created=self.timer(), ttl=ttl, duration_ms=0.0
            )
        except UnsupportedValue as exc:
            raise TypeError(str(exc)) from exc
        depth = len(self.tiers) if tiers is None else tiers
        yield from self.store(key, data, ttl, depth, trace, inflated)

    # -- direct use ---------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` (promoted upwards), or ``default``."""
        return run_sync(self._get_flow(key, default))

    async def aget(self, key: str, default: Any = None) -> Any:
        """`get` for async code; blocking backends run in a thread."""
        return await run_async(self._get_flow(key, default))

    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: float = CachePolicy.SHORT.ttl,
        policy: CachePolicy = CachePolicy.SHORT,
        tiers: int | None = None,
    ) -> None:
        """Store ``value`` (str, JSON data, or a registered type) in the first
        ``tiers`` tiers (all by default) for ``ttl`` seconds."""
        run_sync(self._set_flow(key, value, ttl, policy, tiers))

    async def aset(
        self,
        key: str,
        value: Any,
        *,
        ttl: float = CachePolicy.SHORT.ttl,
        policy: CachePolicy = CachePolicy.SHORT,
        tiers: int | None = None,
    ) -> None:
        """`set` for async code."""
        await run_async(self._set_flow(key, value, ttl, policy, tiers))

    def delete(self, key: str) -> None:
        """Remove ``key`` from every tier."""
        run_sync(self._delete_all(key))

    async def adelete(self, key: str) -> None:
        await run_async(self._delete_all(key))

    def _delete_all(self, key: str) -> Flow[None]:
        trace = Trace("MultiLevelCache.delete", key, Recorders(self._stats))
        key = yield from self.physical(key, trace)
        for tier in self.tiers:
            yield from self._delete_from(tier, key, trace)

    # -- clearing (see llm_middleware/generations.py) -------------------------------

    def physical(self, key: str, trace: Trace) -> Flow[str]:
        """The key ``key`` is stored under in the current generations."""
        shared = self.tiers[-1]
        return self.generations.resolve(
            key, lambda exc: self.report_error(trace, shared, exc, "backend")
        )

    def clear(self, namespace: str | None = None) -> None:
        """Make every entry of ``namespace`` (None: of the whole cache) unreachable,
        here at once and in other processes sharing the last tier within
        ``generation_check_s``; the entries themselves expire by their TTL."""
        run_sync(self.generations.bump(namespace))

    async def aclear(self, namespace: str | None = None) -> None:
        """`clear` for async code."""
        await run_async(self.generations.bump(namespace))

    def stats(self) -> StatsSnapshot:
        """Hits per tier, misses, bypasses by reason, errors by tier, stores,
        promotions, and the time and tokens saved, since creation."""
        return self._stats.snapshot()

    def close(self) -> None:
        """Close every backend (errors are collected and the first re-raised)."""
        errors = []
        for tier in self.tiers:
            try:
                tier.backend.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
