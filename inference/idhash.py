"""``insight_id`` for many rows at once: BLAKE2b-128 (RFC 7693, no key, digest size 16) written with
Numba, over the same bytes as ``inference.insights.insight_id`` (model, version, asset, window start, window
end, each followed by 0x1f; the integers in decimal), the hex digests laid out as one Arrow string column.
Checked against ``hashlib`` in ``tests/test_insights_ids.py``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

_IV = np.array(
    [0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
     0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179],
    dtype=np.uint64,
)
_SIGMA = np.array([
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
], dtype=np.int64)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()


@njit(inline="always", cache=True)
def _rotr(x: Any, n: int) -> Any:  # pragma: no cover - compiled
    return (x >> np.uint64(n)) | (x << np.uint64(64 - n))  # rotate right


@njit(inline="always", cache=True)
def _g(v: np.ndarray, a: int, b: int, c: int, d: int, x: Any, y: Any) -> None:  # pragma: no cover - compiled
    va = v[a] + v[b] + x
    vd = _rotr(v[d] ^ va, 32)
    vc = v[c] + vd
    vb = _rotr(v[b] ^ vc, 24)
    va = va + vb + y
    vd = _rotr(vd ^ va, 16)
    vc = vc + vd
    v[a] = va
    v[d] = vd
    v[c] = vc
    v[b] = _rotr(vb ^ vc, 63)


@njit(nogil=True, cache=True)
def _compress(
    h: np.ndarray, block: np.ndarray, t: Any, last: bool, v: np.ndarray, m: np.ndarray, iv: np.ndarray,
    sigma: np.ndarray,
) -> None:  # pragma: no cover - compiled
    for i in range(16):
        w = np.uint64(0)
        for b in range(8):
            w |= np.uint64(block[i * 8 + b]) << np.uint64(8 * b)
        m[i] = w
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = iv[i]
    v[12] ^= t
    if last:
        v[14] = ~v[14]
    for r in range(12):
        s = sigma[r]
        _g(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        _g(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        _g(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        _g(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        _g(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        _g(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        _g(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        _g(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


@njit(nogil=True, cache=True)
def _put_int(buf: np.ndarray, pos: int, value: int) -> int:  # pragma: no cover - compiled
    if value < 0:
        buf[pos] = 45  # "-"
        pos += 1
        u = -value
    else:
        u = value
    digits = np.empty(20, dtype=np.uint8)
    nd = 0
    while True:
        digits[nd] = 48 + u % 10
        nd += 1
        u //= 10
        if u == 0:
            break
    for i in range(nd):
        buf[pos + i] = digits[nd - 1 - i]
    return pos + nd


@njit(nogil=True, cache=True)
def _ids_kernel(
    pre: np.ndarray, name_buf: np.ndarray, name_off: np.ndarray, idx: np.ndarray, starts: np.ndarray,
    ends: np.ndarray, iv: np.ndarray, sigma: np.ndarray, hexd: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    n = idx.shape[0]
    out = np.empty(n * 32, dtype=np.uint8)
    maxname = 0
    for j in range(name_off.shape[0] - 1):
        maxname = max(maxname, name_off[j + 1] - name_off[j])
    msg = np.zeros(pre.shape[0] + maxname + 1 + 2 * 21 + 2 + 128, dtype=np.uint8)
    h = np.empty(8, dtype=np.uint64)
    v = np.empty(16, dtype=np.uint64)
    m = np.empty(16, dtype=np.uint64)
    block = np.empty(128, dtype=np.uint8)
    msg[:pre.shape[0]] = pre
    for i in range(n):
        a = idx[i]
        pos = pre.shape[0]
        ln = name_off[a + 1] - name_off[a]
        msg[pos:pos + ln] = name_buf[name_off[a]:name_off[a + 1]]
        pos += ln
        msg[pos] = 31
        pos = _put_int(msg, pos + 1, starts[i])
        msg[pos] = 31
        pos = _put_int(msg, pos + 1, ends[i])
        msg[pos] = 31
        total = pos + 1
        for k in range(8):
            h[k] = iv[k]
        h[0] ^= np.uint64(0x01010000 ^ 16)
        off = 0
        while total - off > 128:
            block[:] = msg[off:off + 128]
            off += 128
            _compress(h, block, np.uint64(off), False, v, m, iv, sigma)
        rest = total - off
        block[:] = 0
        block[:rest] = msg[off:total]
        _compress(h, block, np.uint64(total), True, v, m, iv, sigma)
        for k in range(16):
            byte = (h[k // 8] >> np.uint64(8 * (k % 8))) & np.uint64(0xFF)
            out[i * 32 + 2 * k] = hexd[byte >> np.uint64(4)]
            out[i * 32 + 2 * k + 1] = hexd[byte & np.uint64(15)]
    return out


def _string_buffers(arr: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """(data, offsets) of a string array without nulls, as numpy views."""
    bufs = arr.buffers()
    off = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8)
    return data, off


def insight_id_column(
    model: str, version: str, assets: pa.DictionaryArray, window_start_us: Any, window_end_us: Any
) -> pa.StringArray:
    """The ``insight_id`` of every row; ``assets`` dictionary-encoded (string dictionary, no nulls)."""
    n = len(assets)
    name_buf, off = _string_buffers(assets.dictionary)
    name_off = off.astype(np.int64)
    pre = np.frombuffer(model.encode() + b"\x1f" + version.encode() + b"\x1f", dtype=np.uint8)
    idx = np.asarray(assets.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    starts = np.ascontiguousarray(window_start_us, dtype=np.int64)
    ends = np.ascontiguousarray(window_end_us, dtype=np.int64)
    data = _ids_kernel(pre, name_buf, name_off, idx, starts, ends, _IV, _SIGMA, _HEX)
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
