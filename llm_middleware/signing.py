"""Signed entries: HMAC-SHA256 over each stored entry and its cache key, with key ids so
that secrets can rotate (``secret=`` of `MultiLevelCache`, ``LLM_MIDDLEWARE_SECRET``).

A signed entry is ``b"s" + key id (4 bytes) + MAC (32 bytes) + payload``, where the payload
is the entry the codec made; ``encryption`` seals entries instead, for confidentiality.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from .bounded import BoundedMemo
from .codec import InvalidEntry

__all__ = ["Signer"]

_SIGNED = b"s"[0]
_KID_BYTES = 4
_MAC_BYTES = 32
_MEMO_SIZE = 256
_MEMO_BYTES = 64 * 1024


def _mac(secret: bytes, key: str, payload: bytes) -> bytes:
    return hmac.digest(secret, key.encode() + b"\0" + payload, "sha256")


def _as_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


class Signer:
    """HMAC-SHA256 signatures on stored entries, with key ids so secrets can rotate.

    ``secrets``: the accepted secrets, newest first; the first one signs. An entry is
    ``b"s" + key id (4 bytes) + MAC (32 bytes) + payload``. With no secrets, entries
    are stored unsigned and a signed entry is read without checking (nothing to
    check it with).
    """

    __slots__ = ("_keys", "_signing", "_verified")

    def __init__(self, secrets: Sequence[str | bytes] = ()) -> None:
        # (key, entry) pairs already verified: a repeated hit on the same stored bytes
        # skips the MAC (bytes are immutable, so equal bytes verify alike)
        self._verified: BoundedMemo[tuple[str, bytes], bytes] = BoundedMemo(_MEMO_SIZE)
        keys = [_as_bytes(secret) for secret in secrets]
        if any(not key for key in keys):
            raise ValueError("an empty secret signs nothing")
        self._keys = {hashlib.sha256(key).digest()[:_KID_BYTES]: key for key in keys}
        self._signing = (hashlib.sha256(keys[0]).digest()[:_KID_BYTES], keys[0]) if keys else None

    @property
    def enabled(self) -> bool:
        return self._signing is not None

    def sign(self, key: str, payload: bytes) -> bytes:
        """``payload`` signed for the cache key ``key`` (an entry copied under another
        key does not verify)."""
        if self._signing is None:
            return payload
        kid, secret = self._signing
        return b"s" + kid + _mac(secret, key, payload) + payload

    def verify(self, key: str, data: bytes) -> bytes:
        """The payload of ``data``; `InvalidEntry` when a required signature is
        missing (``unsigned``), made with an unknown secret (``unknown_key``) or wrong
        (``bad_signature``)."""
        if not data or data[0] != _SIGNED:
            if self._signing is not None:
                raise InvalidEntry("unsigned")
            return data
        head = 1 + _KID_BYTES + _MAC_BYTES
        if len(data) < head:
            raise InvalidEntry("bad_signature")
        if self._signing is None:
            return data[head:]
        verified = self._verified.get((key, data))
        if verified is not None:
            return verified
        payload = data[head:]
        secret = self._keys.get(data[1 : 1 + _KID_BYTES])
        if secret is None:
            raise InvalidEntry("unknown_key")
        if not hmac.compare_digest(_mac(secret, key, payload), data[1 + _KID_BYTES : head]):
            raise InvalidEntry("bad_signature")
        if len(data) <= _MEMO_BYTES:
            self._verified.put((key, data), payload)
        return payload
