"""Insight rows (``edge.core.datamodel.INSIGHTS``): one per window per model, with severity
(``inference.severity``), the features that contributed most (``inference.top_features``), and provenance.

``insight_id`` (``inference.idhash``) = blake2b-128 of (model, version, asset, window start, window end) in
hex: the same window scored by the same model version always gets the same id, so replays are idempotent.

``build_insights`` is columnar and does the per-row work in **one** Numba call
(``inference.insight_kernel``): severity over per-(asset, model) state arrays, gating and the score's validity
as Arrow bitmaps, the ids, the top-k features of each row and their JSON text. The Arrow columns are built
over the kernel's buffers (``from_buffers``); what does not change from tick to tick is kept
(``inference.insight_columns``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from edge.core.datamodel import INSIGHTS, TS
from inference.idhash import fixed_offsets, id_prefix, string_buffers
from inference.insight_columns import (
    _DICT_STR,
    RowCache,
    _const_dict,
    _const_float,
    _context_column,
    _feature_fragments,
)
from inference.insight_kernel import _rows_kernel
from inference.severity import LEVELS, SeverityTracker
from inference.top_features import top_features_sure

_LEVELS_ARROW = pa.array(LEVELS, type=pa.string())
_NO_CONTRIB = np.zeros((0, 0), dtype=np.float64)


def _asset_rows(tracker: SeverityTracker, cache: RowCache, model: str, assets: Sequence[str]) -> RowCache:
    """The asset column, its dictionary's bytes and the severity slots, kept while the assets repeat."""
    if cache.assets is not None and assets == cache.assets:
        return cache
    listed = list(assets)
    col = pa.array(listed, type=pa.string()).dictionary_encode()
    if col.indices.type != pa.int32():
        col = col.cast(pa.dictionary(pa.int32(), pa.string()))
    cache.assets = listed
    cache.slots = tracker.slots(model, listed)
    cache.asset_col = col
    cache.idx = np.asarray(col.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    cache.name_buf, cache.name_off = string_buffers(col.dictionary)
    return cache


def build_insights(
    *,
    model: str,
    version: str,
    sha256: str,
    threshold: float,
    feature_names: Sequence[str],
    assets: Sequence[str],
    window_start_us: Sequence[int] | np.ndarray,
    window_end_us: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    contributions: np.ndarray | None,
    flags: Sequence[int] | np.ndarray,
    gated: Sequence[bool] | np.ndarray,
    contexts: Sequence[dict[str, str | None]],
    tracker: SeverityTracker,
    k: int = 3,
) -> pa.RecordBatch:
    """INSIGHTS rows for one model's scores of a tick's windows (rows in window order per asset)."""
    n = len(assets)
    s = np.array(scores, dtype=np.float64).reshape(-1)[:n]  # copies: the columns own their buffers
    starts = np.array(window_start_us, dtype=np.int64).reshape(-1)
    ends = np.array(window_end_us, dtype=np.int64).reshape(-1)
    flags32 = np.array(flags, dtype=np.int32).reshape(-1)
    gate_in = np.ascontiguousarray(gated, dtype=np.bool_).reshape(-1)
    if not (s.shape[0] == starts.shape[0] == ends.shape[0] == flags32.shape[0] == gate_in.shape[0] == n):
        raise ValueError("build_insights: assets, scores, windows, flags and gated need one entry per row")
    cache = tracker.rows_cache.get(model)
    if cache is None:
        cache = tracker.rows_cache[model] = RowCache()
    rows = _asset_rows(tracker, cache, model, assets)
    c = _NO_CONTRIB
    if contributions is not None:
        c2 = np.asarray(contributions)
        if c2.ndim == 2 and c2.shape[0] > 0:
            if c2.shape[0] < n:
                raise ValueError("build_insights: fewer contribution rows than windows")
            # one dtype for the kernel: each further one is another compilation
            c2 = c2[:n] if c2.dtype == np.float64 else c2[:n].astype(np.float64)
            c = np.ascontiguousarray(c2)
    frag_buf, frag_off = _feature_fragments(feature_names)
    meta, arena = _rows_kernel(
        rows.slots, s, gate_in, float(threshold), float(tracker.warning_ratio), float(tracker.clear_ratio),
        int(tracker.hysteresis_windows), tracker._state, id_prefix(model, version), rows.name_buf,
        rows.name_off, rows.idx, starts, ends, c, int(k), frag_buf, frag_off,
    )
    n_null, unsure, o_ids, o_lev, o_gate, o_valid, o_joff, o_json, n_json = meta.tolist()
    buf = pa.py_buffer(arena)
    if unsure:
        offsets, data = top_features_sure(c, int(k), frag_buf, frag_off)
        tops = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    else:
        tops = pa.StringArray.from_buffers(n, buf.slice(o_joff, 4 * (n + 1)), buf.slice(o_json, n_json))
    if cache.contexts is None or cache.context_n != n or contexts != cache.contexts:
        cache.contexts, cache.context_n = list(contexts), n  # holds the dicts whose ids the map uses
        cache.context_col, cache.context_texts = _context_column(cache.contexts, n, cache.context_texts)
    ends_col = pa.Array.from_buffers(TS, n, [None, pa.py_buffer(ends)])
    nbits = (n + 7) // 8
    return pa.RecordBatch.from_arrays(
        [
            pa.StringArray.from_buffers(n, fixed_offsets(n), buf.slice(o_ids, 32 * n)),
            ends_col,
            rows.asset_col,
            _const_dict(model, n),
            _const_dict(version, n),
            _const_dict(sha256, n),
            pa.Array.from_buffers(
                pa.float64(), n, [buf.slice(o_valid, nbits) if n_null else None, pa.py_buffer(s)], n_null
            ),
            _const_float(float(threshold), n),
            pa.DictionaryArray.from_buffers(_DICT_STR, n, [None, buf.slice(o_lev, 4 * n)], _LEVELS_ARROW),
            pa.Array.from_buffers(TS, n, [None, pa.py_buffer(starts)]),
            ends_col,
            tops,
            cache.context_col,
            pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(flags32)]),
            pa.Array.from_buffers(pa.bool_(), n, [None, buf.slice(o_gate, nbits)]),
        ],
        schema=INSIGHTS,
    )


def warm_up() -> None:
    """Compile (or load from Numba's cache) the row kernels with the argument types the stage passes
    (contributions of any dtype become float64; none), e.g. in a worker thread before the first tick."""
    for contrib in (np.zeros((1, 2)), None):
        build_insights(
            model="m", version="1", sha256="", threshold=1.0, feature_names=["a", "b"], assets=["a"],
            window_start_us=np.zeros(1, dtype=np.int64), window_end_us=np.ones(1, dtype=np.int64),
            scores=np.zeros(1, dtype=np.float32), contributions=contrib, flags=np.zeros(1, dtype=np.int64),
            gated=np.zeros(1, dtype=np.bool_), contexts=[{}], tracker=SeverityTracker(),
        )
