"""As-of join of MES context onto samples, feature windows and insights.

For each row the context active at its timestamp is attached: per key, the interval of the most specific
scope (a prefix of the row's ``asset`` path) with ``valid_from <= ts < valid_to``. A row after an interval's
end and before the next start gets null, and so does a row before any context: nulls, never a guess.

How: a numba kernel (parallel over chunks of rows, GIL released). Per key, the intervals of all scopes are
concatenated (sorted starts, ends, value codes, offsets per scope); each asset's scopes are resolved once per
batch (per precedence level, a scope rank). Per row and scope the kernel keeps a cursor: rows in time order
(the usual case) walk it forward in O(1), a row earlier than the last one binary-searches. The interval found
must end after the row. Keys whose intervals are identical (work order and batch usually are) share a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from contextualize.mes_events import JOIN_KEYS
from contextualize.mes_store import KeySnapshot, MesContextStore, StoreSnapshot
from contextualize.mes_timeline import scope_prefixes
from edge.core.datamodel import DICT_STR


def _asset_codes(assets: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
    """Dictionary codes of the asset column (-1 for null) and the dictionary."""
    if isinstance(assets, pa.ChunkedArray):
        assets = assets.combine_chunks() if assets.num_chunks != 1 else assets.chunk(0)
    if not pa.types.is_dictionary(assets.type):
        assets = pc.dictionary_encode(assets)
    idx = assets.indices
    codes = (
        idx.to_numpy(zero_copy_only=False)
        if idx.null_count == 0
        else idx.fill_null(-1).to_numpy(zero_copy_only=False)
    )
    codes = codes.astype(np.int32, copy=False)
    dictionary: list[str | None] = assets.dictionary.to_pylist()
    return codes, dictionary


def _ts_us(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_timestamp(col.type):
        if col.type.unit != "us":
            col = col.cast(pa.timestamp("us", tz=col.type.tz))
        col = col.view(pa.int64())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)


def _key_levels(ks: KeySnapshot, dictionary: Sequence[str | None]) -> tuple[list[str], list[np.ndarray]]:
    """Scopes used by this key (in rank order) and, per precedence level, each asset's scope rank (-1)."""
    scope_rank: dict[str, int] = {}
    per_asset: list[list[int]] = []
    for asset in dictionary:
        ranks: list[int] = []
        if asset:
            for p in scope_prefixes(asset):
                if p in ks.scopes:
                    ranks.append(scope_rank.setdefault(p, len(scope_rank)))
        per_asset.append(ranks)
    depth = max((len(r) for r in per_asset), default=0)
    levels = []
    for lv in range(depth):
        arr = np.full(len(dictionary) + 1, -1, dtype=np.int32)  # last slot: null asset (code -1)
        for a, ranks in enumerate(per_asset):
            if lv < len(ranks):
                arr[a] = ranks[lv]
        levels.append(arr)
    return list(scope_rank), levels


class Found(NamedTuple):
    codes: np.ndarray  # int32 per row, 0 where null
    bitmap: np.ndarray | None  # Arrow validity bitmap (uint8, LSB first); None: no nulls
    null_count: int
    values: list[str]


def _all_null(n: int, values: list[str]) -> Found:
    return Found(np.zeros(n, np.int32), np.zeros((n + 7) // 8, np.uint8), n, values)


def context_codes(codes: np.ndarray, dictionary: Sequence[str | None], ts: np.ndarray, snap: StoreSnapshot,
                  keys: Sequence[str] = JOIN_KEYS) -> dict[str, Found]:
    """Per key: int32 value codes per row (0 where null), the Arrow validity bitmap (None: no nulls), the
    null count and the value dictionary.

    Keys whose intervals are the same (work order and batch usually are) are joined in one pass."""
    n = len(ts)
    out: dict[str, Found] = {}
    groups: list[tuple[list[str], list[str], np.ndarray]] = []  # keys sharing intervals, scopes, levels
    for key in keys:
        ks = snap.keys.get(key)
        if ks is None or n == 0:
            out[key] = _all_null(n, [] if ks is None else ks.values)
            continue
        scopes, levels = _key_levels(ks, dictionary)
        if not levels:
            out[key] = _all_null(n, ks.values)
            continue
        for g in groups:
            other = snap.keys[g[0][0]]
            same = g[1] == scopes and all(
                np.array_equal(other.scopes[s][0], ks.scopes[s][0])
                and np.array_equal(other.scopes[s][1], ks.scopes[s][1]) for s in scopes)
            if same:
                g[0].append(key)
                break
        else:
            groups.append(([key], scopes, np.stack(levels)))
    if not groups:
        return out
    codes = np.ascontiguousarray(codes, dtype=np.int32)
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    from contextualize import mes_kernel  # numba: compiled on first use, cached on disk

    kernel = mes_kernel.asof_parallel if n >= 65536 else mes_kernel.asof_serial
    n_chunks = max(1, min(64, n // 65536))
    for g_keys, scopes, level_rank in groups:
        first = snap.keys[g_keys[0]]
        offsets = np.zeros(len(scopes) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(first.scopes[s][0]) for s in scopes])
        starts = np.concatenate([first.scopes[s][0] for s in scopes])
        ends = np.concatenate([first.scopes[s][1] for s in scopes])
        vals = np.stack([np.concatenate([snap.keys[k].scopes[s][2] for s in scopes]) for k in g_keys])
        res = np.empty((len(g_keys), n), dtype=np.int32)
        bitmap = np.empty((len(g_keys), (n + 7) // 8), dtype=np.uint8)
        counts = np.zeros((n_chunks, len(g_keys)), dtype=np.int64)
        kernel(codes, ts, level_rank.astype(np.int32), offsets, starts, ends, vals, res, bitmap, counts,
               n_chunks)
        found = counts.sum(axis=0)
        for j, k in enumerate(g_keys):
            nulls = n - int(found[j])
            out[k] = Found(res[j], bitmap[j] if nulls else None, nulls, snap.keys[k].values)
    return {k: out[k] for k in keys}


def _dict_array(f: Found) -> pa.DictionaryArray:
    n = len(f.codes)
    bitmap = None if f.bitmap is None else pa.py_buffer(f.bitmap)
    indices = pa.Array.from_buffers(pa.int32(), n, [bitmap, pa.py_buffer(f.codes)], null_count=f.null_count)
    # codes come from the kernel and index ``values``: no bounds check needed
    return pa.DictionaryArray.from_arrays(indices, pa.array(f.values, type=pa.string()), safe=False)


def context_columns(
    batch: pa.RecordBatch | pa.Table,
    store: MesContextStore | StoreSnapshot,
    *,
    ts_column: str = "ts",
    asset_column: str = "asset",
    keys: Sequence[str] = JOIN_KEYS,
) -> dict[str, pa.DictionaryArray]:
    """The context columns (dictionary strings) for the rows of ``batch``."""
    snap = store.snapshot() if isinstance(store, MesContextStore) else store
    codes, dictionary = _asset_codes(batch.column(asset_column))
    ts = _ts_us(batch.column(ts_column))
    found = context_codes(codes, dictionary, ts, snap, keys)
    return {k: _dict_array(f) for k, f in found.items()}


def attach_context(
    batch: pa.RecordBatch,
    store: MesContextStore | StoreSnapshot,
    *,
    ts_column: str = "ts",
    asset_column: str = "asset",
    keys: Sequence[str] = JOIN_KEYS,
) -> pa.RecordBatch:
    """``batch`` with ``work_order``, ``product``, ``batch`` and ``shift`` filled with the context active at
    each row's ``ts_column`` (``ts`` for samples, ``window_end`` for feature windows). Columns that exist are
    replaced in place (CONTEXTUALIZED_SAMPLES keeps its schema); missing ones are appended."""
    cols = context_columns(batch, store, ts_column=ts_column, asset_column=asset_column, keys=keys)
    arrays = list(batch.columns)
    fields = list(batch.schema)
    for key, arr in cols.items():
        i = batch.schema.get_field_index(key)
        if i >= 0:
            arrays[i] = arr.cast(fields[i].type) if fields[i].type != arr.type else arr
        else:
            arrays.append(arr)
            fields.append(pa.field(key, DICT_STR))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=batch.schema.metadata))


def attach_insight_context(
    batch: pa.RecordBatch, store: MesContextStore | StoreSnapshot, *, ts_column: str = "window_end"
) -> pa.RecordBatch:
    """An INSIGHTS batch with its ``context`` JSON column set to the context at ``window_end`` (keys kept
    from an existing JSON object that are not context keys)."""
    cols = context_columns(batch, store, ts_column=ts_column)
    lists = {k: v.to_pylist() for k, v in cols.items()}
    i = batch.schema.get_field_index("context")
    old: list[str | None] = batch.column(i).to_pylist() if i >= 0 else [None] * batch.num_rows
    out: list[str] = []
    for r in range(batch.num_rows):
        doc: dict[str, Any] = {}
        prev = old[r]
        if prev:
            try:
                parsed = orjson.loads(prev)
                if isinstance(parsed, dict):
                    doc = parsed
            except orjson.JSONDecodeError:
                doc = {}
        for k in JOIN_KEYS:
            doc[k] = lists[k][r]
        out.append(orjson.dumps(doc).decode())
    arr = pa.array(out, type=pa.string())
    if i >= 0:
        return batch.set_column(i, batch.schema.field(i), arr)
    return batch.append_column(pa.field("context", pa.string()), arr)


def context_join(store: MesContextStore) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """The ``context_join`` of :class:`contextualize.enrich.Contextualizer`: attach_context on ``store``."""

    def join(batch: pa.RecordBatch) -> pa.RecordBatch:
        return attach_context(batch, store)

    return join
