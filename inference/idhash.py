"""Insight ids: ``insight_id`` (hashlib, one row: the reference) and the same for many rows at once,
BLAKE2b-128 (RFC 7693, no key, digest size 16) written with Numba, over the same bytes (model, version,
asset, window start, window end, each followed by 0x1f; the integers in decimal), the hex digests laid out
as one Arrow string column. Checked against ``hashlib`` in ``tests/inference/test_insights_ids.py``.

The compression function is unrolled (12 rounds x 8 mixes with the message schedule as literal word
numbers, generated from RFC 7693's SIGMA table), so the 16 state words and 16 message words stay in
registers, which is much faster than the loop over an index table. The message words are read as little-endian
uint64 from the byte buffer (as RFC 7693 defines them), which needs a little-endian machine (checked at
import). ``hash_rows_into`` is also called by the fused row kernel (``inference.insight_kernel``).
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

if sys.byteorder != "little":  # pragma: no cover - the message words are read as native uint64
    raise ImportError("inference.idhash reads BLAKE2b message words as native uint64: little-endian only")

_IV = np.array(
    [0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
     0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179],
    dtype=np.uint64,
)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
_PARAM = np.uint64(0x01010000 ^ 16)  # parameter block word 0: digest length 16, no key, fanout 1, depth 1


@njit(cache=True)
def _rotr(x: Any, n: int) -> Any:  # pragma: no cover - compiled
    return (x >> np.uint64(n)) | (x << np.uint64(64 - n))  # rotate right


@njit(cache=True)
def _g(a: Any, b: Any, c: Any, d: Any, x: Any, y: Any) -> tuple[Any, Any, Any, Any]:  # pragma: no cover
    a = a + b + x
    d = _rotr(d ^ a, 32)
    c = c + d
    b = _rotr(b ^ c, 24)
    a = a + b + y
    d = _rotr(d ^ a, 16)
    c = c + d
    b = _rotr(b ^ c, 63)
    return a, b, c, d


@njit(nogil=True, cache=True)
def _compress(h: np.ndarray, w: np.ndarray, o: int, t: Any, last: bool) -> None:  # pragma: no cover
    """One BLAKE2b compression of the 128-byte block ``w[o:o + 16]`` (uint64 words) into ``h``; ``t`` is
    the byte count so far, ``last`` marks the final block."""
    m0, m1, m2, m3 = w[o], w[o + 1], w[o + 2], w[o + 3]
    m4, m5, m6, m7 = w[o + 4], w[o + 5], w[o + 6], w[o + 7]
    m8, m9, m10, m11 = w[o + 8], w[o + 9], w[o + 10], w[o + 11]
    m12, m13, m14, m15 = w[o + 12], w[o + 13], w[o + 14], w[o + 15]
    v0, v1, v2, v3, v4, v5, v6, v7 = h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
    v8, v9, v10, v11 = _IV[0], _IV[1], _IV[2], _IV[3]
    v12 = _IV[4] ^ t
    v13 = _IV[5]
    v14 = ~_IV[6] if last else _IV[6]
    v15 = _IV[7]
    # generated from RFC 7693's SIGMA (rounds 10 and 11 repeat rows 0 and 1)
    # round 0
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m0, m1)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m2, m3)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m4, m5)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m6, m7)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m8, m9)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m10, m11)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m12, m13)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m14, m15)
    # round 1
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m14, m10)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m4, m8)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m9, m15)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m13, m6)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m1, m12)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m0, m2)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m11, m7)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m5, m3)
    # round 2
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m11, m8)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m12, m0)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m5, m2)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m15, m13)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m10, m14)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m3, m6)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m7, m1)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m9, m4)
    # round 3
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m7, m9)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m3, m1)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m13, m12)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m11, m14)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m2, m6)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m5, m10)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m4, m0)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m15, m8)
    # round 4
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m9, m0)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m5, m7)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m2, m4)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m10, m15)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m14, m1)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m11, m12)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m6, m8)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m3, m13)
    # round 5
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m2, m12)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m6, m10)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m0, m11)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m8, m3)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m4, m13)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m7, m5)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m15, m14)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m1, m9)
    # round 6
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m12, m5)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m1, m15)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m14, m13)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m4, m10)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m0, m7)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m6, m3)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m9, m2)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m8, m11)
    # round 7
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m13, m11)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m7, m14)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m12, m1)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m3, m9)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m5, m0)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m15, m4)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m8, m6)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m2, m10)
    # round 8
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m6, m15)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m14, m9)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m11, m3)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m0, m8)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m12, m2)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m13, m7)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m1, m4)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m10, m5)
    # round 9
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m10, m2)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m8, m4)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m7, m6)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m1, m5)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m15, m11)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m9, m14)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m3, m12)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m13, m0)
    # round 10
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m0, m1)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m2, m3)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m4, m5)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m6, m7)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m8, m9)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m10, m11)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m12, m13)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m14, m15)
    # round 11
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m14, m10)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m4, m8)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m9, m15)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m13, m6)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m1, m12)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m0, m2)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m11, m7)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m5, m3)
    h[0] ^= v0 ^ v8
    h[1] ^= v1 ^ v9
    h[2] ^= v2 ^ v10
    h[3] ^= v3 ^ v11
    h[4] ^= v4 ^ v12
    h[5] ^= v5 ^ v13
    h[6] ^= v6 ^ v14
    h[7] ^= v7 ^ v15


@njit(cache=True)
def put_int(buf: np.ndarray, pos: int, value: int) -> int:  # pragma: no cover - compiled
    """``str(value)`` as ASCII at ``pos``; returns the position after it."""
    if value < 0:
        buf[pos] = 45  # "-"
        pos += 1
        u = -value
    else:
        u = value
    nd = 1
    t = u // 10
    while t > 0:
        nd += 1
        t //= 10
    for i in range(nd - 1, -1, -1):
        buf[pos + i] = 48 + u % 10
        u //= 10
    return pos + nd


@njit(nogil=True, cache=True)
def hash_rows_into(
    out: np.ndarray, pre: np.ndarray, name_buf: np.ndarray, name_off: np.ndarray, idx: np.ndarray,
    starts: np.ndarray, ends: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """The 32 hex digits of ``insight_id`` of every row, concatenated into ``out``: row i hashes
    ``pre + name[idx[i]] + 0x1f + starts[i] + 0x1f + ends[i] + 0x1f`` (``pre`` = model 0x1f version 0x1f)."""
    n = idx.shape[0]
    maxname = 0
    for j in range(name_off.shape[0] - 1):
        maxname = max(maxname, name_off[j + 1] - name_off[j])
    cap = pre.shape[0] + maxname + 3 + 2 * 20 + 2  # the longest message
    cap = (cap // 128 + 1) * 128
    msg = np.zeros(cap, dtype=np.uint8)
    w = msg.view(np.uint64)
    h = np.empty(8, dtype=np.uint64)
    npre = pre.shape[0]
    msg[:npre] = pre
    for i in range(n):
        a = idx[i]
        lo = name_off[a]
        ln = name_off[a + 1] - lo
        for j in range(ln):
            msg[npre + j] = name_buf[lo + j]
        pos = npre + ln
        msg[pos] = 31
        pos = put_int(msg, pos + 1, starts[i])
        msg[pos] = 31
        pos = put_int(msg, pos + 1, ends[i])
        msg[pos] = 31
        total = pos + 1
        end = ((total + 127) // 128) * 128
        for j in range(total, end):
            msg[j] = 0
        for j in range(8):
            h[j] = _IV[j]
        h[0] ^= _PARAM
        off = 0
        while total - off > 128:
            _compress(h, w, off // 8, np.uint64(off + 128), False)
            off += 128
        _compress(h, w, off // 8, np.uint64(total), True)
        for j in range(16):
            byte = (h[j // 8] >> np.uint64(8 * (j % 8))) & np.uint64(0xFF)
            out[i * 32 + 2 * j] = _HEX[byte >> np.uint64(4)]
            out[i * 32 + 2 * j + 1] = _HEX[byte & np.uint64(15)]


def string_buffers(arr: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """(data, offsets as int64) of a string array without nulls, as numpy arrays."""
    bufs = arr.buffers()
    off = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8)
    return data, off


_SEP = b"\x1f"


def insight_id(model: str, version: str, asset: str, window_start_us: int, window_end_us: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in (model, version, asset, str(int(window_start_us)), str(int(window_end_us))):
        h.update(part.encode())
        h.update(_SEP)
    return h.hexdigest()


def id_prefix(model: str, version: str) -> np.ndarray:
    return np.frombuffer(model.encode() + b"\x1f" + version.encode() + b"\x1f", dtype=np.uint8)


_OFFSETS: dict[int, pa.Buffer] = {}


def fixed_offsets(n: int, width: int = 32) -> pa.Buffer:
    """Arrow offsets 0, width, 2 width, ... (n + 1 of them), shared between calls (buffers are immutable)."""
    key = n * 64 + width
    buf = _OFFSETS.get(key)
    if buf is None:
        if len(_OFFSETS) > 64:
            _OFFSETS.clear()
        buf = _OFFSETS[key] = pa.py_buffer(np.arange(0, width * n + 1, width, dtype=np.int32))
    return buf


def insight_id_column(
    model: str, version: str, assets: pa.DictionaryArray, window_start_us: Any, window_end_us: Any
) -> pa.StringArray:
    """The ``insight_id`` of every row; ``assets`` dictionary-encoded (string dictionary, no nulls)."""
    n = len(assets)
    name_buf, name_off = string_buffers(assets.dictionary)
    idx = np.asarray(assets.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    starts = np.ascontiguousarray(window_start_us, dtype=np.int64)
    ends = np.ascontiguousarray(window_end_us, dtype=np.int64)
    data = np.empty(32 * n, dtype=np.uint8)
    hash_rows_into(data, id_prefix(model, version), name_buf, name_off, idx, starts, ends)
    return pa.StringArray.from_buffers(n, fixed_offsets(n), pa.py_buffer(data))
