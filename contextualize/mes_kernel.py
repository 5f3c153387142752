"""The numba kernel of the MES as-of join (see :mod:`contextualize.mes_join`). Imported on first use."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange


def _asof(codes: Any, ts: Any, level_rank: Any, offsets: Any, starts: Any, ends: Any, vals: Any, out: Any,
          bitmap: Any, counts: Any, n_chunks: int) -> None:  # pragma: no cover - compiled
    """For each row: the interval of the first scope level (most specific first) whose interval holds ``ts``.

    ``codes``: asset code per row (-1 none); ``level_rank[lv, code]``: scope rank of that asset at precedence
    level ``lv`` (-1 none; levels are compact); ``offsets[r]:offsets[r+1]``: the intervals of scope ``r`` in
    ``starts`` (sorted), ``ends``, ``vals[key, i]``. Writes ``out[key, row]`` (0 where none), the Arrow
    validity bitmap ``bitmap[key, row // 8]`` (LSB first) and ``counts[chunk, key]``, the values found.
    """
    n = ts.shape[0]
    n_scopes = offsets.shape[0] - 1
    n_levels = level_rank.shape[0]
    n_keys = vals.shape[0]
    chunk = ((n + n_chunks - 1) // n_chunks + 7) // 8 * 8  # whole bytes of the bitmap per chunk
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        cur = np.full(n_scopes, -2, np.int64)  # per scope: index of the last start <= t (a - 1: none)
        last = np.zeros(n_scopes, np.int64)
        acc = np.zeros(n_keys, np.uint8)
        for i in range(lo, hi):
            code = codes[i]
            found = -1
            if code >= 0:
                t = ts[i]
                for lv in range(n_levels):
                    r = level_rank[lv, code]
                    if r < 0:
                        break
                    a = offsets[r]
                    b = offsets[r + 1]
                    k = cur[r]
                    if k == -2 or t < last[r]:  # first row of the scope in the chunk, or back in time
                        k = a + np.searchsorted(starts[a:b], t, side="right") - 1
                    else:  # rows in time order: walk forward
                        while k + 1 < b and starts[k + 1] <= t:
                            k += 1
                    cur[r] = k
                    last[r] = t
                    if k >= a and t < ends[k]:
                        found = k
                        break
            bit = i & 7
            if found >= 0:
                for j in range(n_keys):
                    out[j, i] = vals[j, found]
                    acc[j] |= np.uint8(1 << bit)
                    counts[c, j] += 1
            else:
                for j in range(n_keys):
                    out[j, i] = 0
            if bit == 7 or i == hi - 1:
                for j in range(n_keys):
                    bitmap[j, i >> 3] = acc[j]
                    acc[j] = 0


asof_parallel = njit(parallel=True, cache=True, nogil=True)(_asof)
asof_serial = njit(cache=True, nogil=True)(_asof)
