"""The fused per-row kernel of ``build_insights``: severity, gating and validity bitmaps, ids and the
top-features JSON of every row in one Numba call, written into one byte arena the Arrow columns are views
of."""

from __future__ import annotations

import numpy as np
from numba import njit

from inference.idhash import hash_rows_into
from inference.severity import _severity_kernel
from inference.top_features import _json_row, _round_top_row


@njit(cache=True)
def _aligned(x: int) -> int:  # pragma: no cover - compiled
    return (x + 63) // 64 * 64


@njit(nogil=True, cache=True)
def _rows_kernel(
    slots: np.ndarray,
    scores: np.ndarray,
    gated: np.ndarray,
    threshold: float,
    warning_ratio: float,
    clear_ratio: float,
    hysteresis: int,
    state: np.ndarray,
    pre: np.ndarray,
    name_buf: np.ndarray,
    name_off: np.ndarray,
    idx: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    contrib: np.ndarray,
    k: int,
    frag_buf: np.ndarray,
    frag_off: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Everything per row of ``build_insights`` in one call, written into one byte arena (sections 64-byte
    aligned): the ids' hex digits, the severity levels (int32, updating ``state``), the gating and score
    validity bitmaps, and the top-features JSON (offsets, data). Returns (meta, arena); meta = null scores,
    values that need Python's formatting (then the JSON section is left unwritten), the sections' starts, the
    JSON length."""
    n = slots.shape[0]
    f = contrib.shape[1]
    kk = max(0, min(k, f))
    longest = 0
    for j in range(frag_off.shape[0] - 1):
        longest = max(longest, frag_off[j + 1] - frag_off[j])
    nbytes = (n + 7) // 8
    o_ids = 0
    o_lev = _aligned(o_ids + 32 * n)
    o_gate = _aligned(o_lev + 4 * n)
    o_valid = _aligned(o_gate + nbytes)
    o_joff = _aligned(o_valid + nbytes)
    o_json = _aligned(o_joff + 4 * (n + 1))
    arena = np.empty(o_json + n * (2 + kk * (longest + 32)) + 2, dtype=np.uint8)
    meta = np.zeros(9, dtype=np.int64)
    # gating (a non-finite score is gated) and the score's validity, as Arrow bitmaps
    gate = np.empty(n, dtype=np.bool_)
    arena[o_gate:o_json] = 0
    n_null = 0
    for i in range(n):
        fin = np.isfinite(scores[i])
        g = gated[i] or not fin
        gate[i] = g
        bit = np.uint8(1 << (i & 7))
        if g:
            arena[o_gate + (i >> 3)] |= bit
        if fin:
            arena[o_valid + (i >> 3)] |= bit
        else:
            n_null += 1
    levels = arena[o_lev:o_lev + 4 * n].view(np.int32)
    _severity_kernel(slots, scores, gate, threshold, warning_ratio, clear_ratio, hysteresis, state, levels)
    hash_rows_into(arena[o_ids:o_ids + 32 * n], pre, name_buf, name_off, idx, starts, ends)
    # top features: selection, 6-digit rounding, JSON text
    joff = arena[o_joff:o_joff + 4 * (n + 1)].view(np.int32)
    joff[0] = 0
    vals = np.empty(max(kk, 1), dtype=np.float64)
    order = np.zeros(max(kk, 1), dtype=np.int64)
    mant = np.zeros(max(kk, 1), dtype=np.int64)
    dexp = np.zeros(max(kk, 1), dtype=np.int64)
    neg = np.zeros(max(kk, 1), dtype=np.bool_)
    digits = np.empty(24, dtype=np.uint8)
    unsure = 0
    pos = o_json
    for i in range(n):
        if kk:
            unsure += _round_top_row(contrib, i, kk, vals, order, mant, dexp, neg)
        if unsure:
            continue  # the caller formats these rows again with Python's help
        pos = _json_row(arena, pos, kk, order, mant, dexp, neg, frag_buf, frag_off, digits)
        joff[i + 1] = pos - o_json
    meta[0] = n_null
    meta[1] = unsure
    meta[2] = o_ids
    meta[3] = o_lev
    meta[4] = o_gate
    meta[5] = o_valid
    meta[6] = o_joff
    meta[7] = o_json
    meta[8] = pos - o_json
    return meta, arena
