"""A partition as bytes, so that other processes (and machines) find its entries.

The partition's entries -- exact keys, normal forms, expiry times, and what
verified matching observed of them -- travel as a
JSON header, their vectors as float16 rows after it. Never pickle; every field
read back is checked, and anything malformed is refused as a whole. The blob is
bounded: the newest ``limit`` entries, and no more bytes than the tier holds
(memcached: 1 MiB).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from typing import Any

from .index import Entry

__all__ = ["BlobError", "decode_partition", "encode_partition"]

MAGIC = b"LMSEM1\n"
_LENGTH = struct.Struct(">I")
_MAX_KEY = 250
_MAX_OBSERVED = 64


class BlobError(ValueError):
    """Bytes that are not a partition of this embedder."""


def encode_partition(
    entries: Sequence[Entry],
    embedder: str,
    dimension: int,
    *,
    limit: int,
    max_bytes: int | None = None,
) -> bytes:
    """The newest ``limit`` entries (fewer when ``max_bytes`` demands) as bytes."""
    import numpy as np

    chosen = list(entries)[-limit:] if limit > 0 else []
    while True:
        header = {
            "embedder": embedder,
            "dimension": dimension,
            "entries": [_item(e) for e in chosen],
        }
        head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
        rows = np.zeros((len(chosen), dimension), dtype="<f2")
        if chosen:
            rows[:] = np.stack([np.asarray(e.vector, dtype=np.float32) for e in chosen])
        blob = MAGIC + _LENGTH.pack(len(head)) + head + rows.tobytes()
        if max_bytes is None or len(blob) <= max_bytes or not chosen:
            return blob
        keep = max(0, int(len(chosen) * max_bytes / len(blob)) - 1)
        chosen = chosen[len(chosen) - keep :] if keep else []


def _item(entry: Entry) -> list[Any]:
    item: list[Any] = [entry.key, entry.normal, entry.expires]
    if entry.observations:  # what verified matching learnt about the entry
        item.append([[round(s, 6), int(ok)] for s, ok in entry.observations[-_MAX_OBSERVED:]])
    return item


def _observations(value: Any) -> tuple[tuple[float, bool], ...] | None:
    """Checked observations of a shared entry; ``None`` when malformed."""
    if not isinstance(value, list) or len(value) > _MAX_OBSERVED:
        return None
    out = []
    for pair in value:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and type(pair[0]) in (int, float)
            and math.isfinite(pair[0])
            and -1.0 <= pair[0] <= 1.0
            and pair[1] in (0, 1)
            and type(pair[1]) is int
        ):
            return None
        out.append((float(pair[0]), bool(pair[1])))
    return tuple(out)


def decode_partition(data: bytes, embedder: str, dimension: int) -> list[Entry]:
    """The entries in ``data``; `BlobError` when anything does not check out."""
    import numpy as np

    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _LENGTH.size:
        raise BlobError("not a semantic partition")
    start = len(MAGIC) + _LENGTH.size
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if start + length > len(data):
        raise BlobError("truncated header")
    try:
        header: Any = json.loads(data[start : start + length])
    except ValueError as exc:
        raise BlobError(f"bad header: {exc}") from exc
    if not isinstance(header, dict) or header.get("embedder") != embedder:
        raise BlobError("another embedder's partition")
    if header.get("dimension") != dimension or not isinstance(header.get("entries"), list):
        raise BlobError("wrong dimension or no entries")
    items = header["entries"]
    body = data[start + length :]
    if len(body) != len(items) * dimension * 2:
        raise BlobError("vector bytes do not match the entries")
    rows = np.frombuffer(body, dtype="<f2").reshape(len(items), dimension).astype(np.float32)
    entries = []
    for i, item in enumerate(items):
        observed: tuple[tuple[float, bool], ...] | None = ()
        if isinstance(item, list) and len(item) == 4:
            observed = _observations(item.pop())
        if observed is None or not (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], str)
            and 0 < len(item[0]) <= _MAX_KEY
            and item[0].isascii()
            and isinstance(item[1], str)
            and type(item[2]) in (int, float)
            and math.isfinite(item[2])
        ):
            raise BlobError(f"entry {i} is malformed")
        if not np.isfinite(rows[i]).all():
            raise BlobError(f"entry {i} has a non-finite vector")
        entries.append(Entry(item[0], item[1], rows[i], float(item[2]), observed))
    return entries
