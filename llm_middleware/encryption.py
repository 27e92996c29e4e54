"""Confidentiality in shared tiers: entries sealed with an AEAD, under rotating keys.

A sealed entry is ``b"e" + key id (4 bytes) + nonce (12 random bytes) + ciphertext``,
where the ciphertext (with its 16-byte tag) is AES-256-GCM over the entry the codec made
(already compressed), and the associated data is the header plus the cache key: an entry
copied under another key, or with a byte changed, does not decrypt.

Keys are 32 random bytes, written in base64 (`generate_key`, ``llm-middleware keygen``),
listed newest first: the first seals, every listed key opens. The key id is a digest of
the key, so the id names a key without revealing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from .bounded import BoundedMemo
from .codec import InvalidEntry
from .errors import ConfigurationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ENCRYPTION_KEY_ENV",
    "KEY_BYTES",
    "Opened",
    "Sealer",
    "generate_key",
    "is_sealed",
    "parse_keys",
]

ENCRYPTION_KEY_ENV = "LLM_MIDDLEWARE_ENCRYPTION_KEY"
KEY_BYTES = 32
_SEALED = b"e"[0]
_KID_BYTES = 4
_NONCE_BYTES = 12
_TAG_BYTES = 16
_HEAD = 1 + _KID_BYTES + _NONCE_BYTES
_KID_LABEL = b"llm-middleware encryption key id\0"
_MEMO_SIZE = 256
_MEMO_BYTES = 64 * 1024

EncryptionKeys = str | bytes | Sequence[str | bytes]
"""What ``encryption_key=`` takes: one base64 key, a comma-separated list of them, raw
32-byte keys, or a sequence of either; newest first."""


def generate_key() -> str:
    """A new key: 32 random bytes from the operating system, base64."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def _decode_key(text: str) -> bytes:
    text = "".join(text.split())
    if "-" in text or "_" in text:  # the URL-safe alphabet
        text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text, validate=True)


def parse_keys(keys: EncryptionKeys | None) -> list[bytes]:
    """The raw keys, newest first: from ``keys``, or (when ``None``) from the environment
    variable ``LLM_MIDDLEWARE_ENCRYPTION_KEY``. No keys: an empty list.

    A key that is not base64 of 32 bytes raises `ConfigurationError`, naming where it came
    from (``encryption_key`` or the variable) and which one of the list it is, never its text.
    """
    source = "encryption_key"
    if keys is None:
        source, keys = ENCRYPTION_KEY_ENV, os.environ.get(ENCRYPTION_KEY_ENV, "")
        if not keys.strip():
            return []
    items: list[str | bytes] = (
        list(keys.split(","))
        if isinstance(keys, str)
        else [keys]
        if isinstance(keys, bytes)
        else list(keys)
    )
    raw: list[bytes] = []
    for number, item in enumerate(items, 1):
        where = f"{source}: key {number} of {len(items)}"
        if isinstance(item, bytes):
            if len(item) != KEY_BYTES:
                raise ConfigurationError(
                    f"{where} is {len(item)} bytes; a bytes key is the {KEY_BYTES} raw bytes "
                    "(a base64 key is a str)"
                )
            raw.append(item)
            continue
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{where} is empty or not a str")
        try:
            key = _decode_key(item)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError(
                f"{where} is not base64 (make one with `llm-middleware keygen`)"
            ) from exc
        if len(key) != KEY_BYTES:
            raise ConfigurationError(
                f"{where} decodes to {len(key)} bytes, not {KEY_BYTES} "
                "(make one with `llm-middleware keygen`)"
            )
        raw.append(key)
    return raw


def key_id(key: bytes) -> bytes:
    """The 4-byte id a sealed entry names its key by."""
    return hashlib.sha256(_KID_LABEL + key).digest()[:_KID_BYTES]


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` is a sealed entry (rather than a plain or signed one)."""
    return bool(data) and data[0] == _SEALED


class Opened(NamedTuple):
    """An entry opened: the codec's bytes, and whether a key older than the newest sealed
    it (then the entry is worth sealing again under the newest)."""

    payload: bytes
    stale_key: bool


def _aead(key: bytes) -> AESGCM:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:
        raise ConfigurationError(
            "encryption_key needs the cryptography package: pip install 'llm-middleware[crypto]'"
        ) from exc
    return AESGCM(key)


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


class Sealer:
    """Seals entries for shared tiers and opens them; keys newest first.

    With no keys it is disabled: `seal` and `open` are then never called by the cache.
    """

    __slots__ = ("_ciphers", "_invalid", "_newest", "_opened")

    def __init__(self, keys: Sequence[bytes] = ()) -> None:
        # (cache key, entry) pairs already opened: a repeated hit on the same stored bytes
        # skips the cipher (equal bytes under the same keys open alike)
        self._opened: BoundedMemo[tuple[str, bytes], Opened] = BoundedMemo(_MEMO_SIZE)
        self._ciphers: dict[bytes, AESGCM] = {}
        for key in keys:
            kid = key_id(key)
            if kid not in self._ciphers:  # a key listed twice is the same key
                self._ciphers[kid] = _aead(key)
        self._newest = key_id(keys[0]) if keys else None
        self._invalid: type[Exception] = _invalid_tag() if keys else ValueError

    @property
    def enabled(self) -> bool:
        return self._newest is not None

    def seal(self, key: str, payload: bytes) -> bytes:
        """``payload`` encrypted under the newest key, bound to the cache key ``key``."""
        kid = self._newest
        if kid is None:
            raise RuntimeError("seal() on a Sealer without keys")
        head = b"e" + kid + os.urandom(_NONCE_BYTES)
        return head + self._ciphers[kid].encrypt(
            head[1 + _KID_BYTES :], payload, head + key.encode()
        )

    def open(self, key: str, data: bytes) -> Opened:
        """The payload sealed in ``data`` for ``key``; `InvalidEntry` when ``data`` is not
        sealed (``unencrypted``), names a key not listed (``unknown_key``), or does not
        decrypt: changed, truncated, or sealed for another cache key (``decrypt_failed``)."""
        opened = self._opened.get((key, data))
        if opened is not None:
            return opened
        if not is_sealed(data):
            raise InvalidEntry("unencrypted")
        if len(data) < _HEAD + _TAG_BYTES:
            raise InvalidEntry("decrypt_failed")
        kid = data[1 : 1 + _KID_BYTES]
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise InvalidEntry("unknown_key")
        try:
            payload = cipher.decrypt(
                data[1 + _KID_BYTES : _HEAD], data[_HEAD:], data[:_HEAD] + key.encode()
            )
        except self._invalid as exc:
            raise InvalidEntry("decrypt_failed") from exc
        opened = Opened(payload, kid != self._newest)
        if len(data) <= _MEMO_BYTES:
            self._opened.put((key, data), opened)
        return opened
