"""Training sets: a baseline period (a wide CSV or Parquet table, or samples from the historian) windowed
and featurized by the same ``Windower`` and ``FeatureExtractor`` as the live pipeline, so a model sees the
features the pipeline produces, in the same order; and the fingerprint the manifest records of them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from edge.core.datamodel import CONTEXTUALIZED_SAMPLES, DICT_STR, TS
from inference.windows import GATING_FLAGS, WindowSpec


@dataclass
class TrainingSet:
    feature_names: list[str]
    x: np.ndarray  # (windows, features) float64, gated windows removed
    window_start_us: np.ndarray
    fingerprint: dict[str, Any] = field(default_factory=dict)
    window_s: float = 0.0  # the windows' length and hop (0: unknown, no overlap gap in cross-calibration)
    hop_s: float = 0.0
    units: dict[str, str] = field(default_factory=dict)  # signal -> unit, where the samples carry one
    contexts: list[dict[str, str | None]] = field(default_factory=list)  # per row of x: its MES context


def read_table(
    path: Path,
    time_column: str | None = None,
    *,
    ignore: Sequence[str] = (),
    rows: tuple[int | None, int | None] | None = None,
    rename: dict[str, str] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(ts_us, {signal: values}) of a wide CSV (``,`` or ``;``) or Parquet file: every numeric column but the
    time column and the ``ignore`` ones (label columns such as SKAB's ``anomaly``, ``changepoint`` are not
    dropped by name: name them), rows ``rows`` = (start, end) (Python slice bounds, None = open), columns
    renamed by ``rename`` (column -> the signal name: tag or measure)."""
    import polars as pl

    if path.suffix.lower() in (".parquet", ".pq"):
        df = pl.read_parquet(path)
    else:
        head = path.read_text(errors="replace").splitlines()[0] if path.stat().st_size else ""
        sep = ";" if head.count(";") > head.count(",") else ","
        df = pl.read_csv(path, separator=sep, try_parse_dates=True)
    tcol = time_column or next(
        (c for c in df.columns if c.lower() in ("datetime", "timestamp", "ts", "time")), df.columns[0]
    )
    unknown = sorted(set(ignore) - set(df.columns)) + sorted(set(rename or {}) - set(df.columns))
    if unknown:
        raise ValueError(f"{path.name} has no column {', '.join(unknown)} (columns: {', '.join(df.columns)})")
    if rows is not None:
        lo, hi = slice(*rows).indices(df.height)[:2]
        df = df.slice(lo, max(0, hi - lo))
    t = df.get_column(tcol)
    if t.dtype == pl.Utf8:
        t = t.str.to_datetime()
    if t.dtype.is_temporal():
        ts_us = t.cast(pl.Datetime("us")).cast(pl.Int64).to_numpy()
    else:  # numeric seconds
        ts_us = (t.cast(pl.Float64).to_numpy() * 1e6).astype(np.int64)
    names = rename or {}
    signals = {
        names.get(c, c): df.get_column(c).cast(pl.Float64).to_numpy()
        for c in df.columns
        if c != tcol and df.get_column(c).dtype.is_numeric() and c not in ignore
    }
    return ts_us, signals


def samples_batch(ts_us: np.ndarray, signals: dict[str, np.ndarray], asset: str) -> pa.RecordBatch:
    """A CONTEXTUALIZED_SAMPLES batch from a wide table (one row per timestamp and signal)."""
    names = list(signals)
    n, k = len(ts_us), len(names)
    ts = np.repeat(np.asarray(ts_us, dtype=np.int64), k)
    vals = (
        np.stack([np.asarray(signals[s], dtype=np.float64) for s in names], axis=1).reshape(-1)
        if k
        else np.zeros(0)
    )
    tag_idx = np.tile(np.arange(k, dtype=np.int32), n)
    tags = pa.DictionaryArray.from_arrays(pa.array(tag_idx), pa.array(names, type=pa.string()))
    rows = n * k
    zeros32 = pa.array(np.zeros(rows, dtype=np.int32))
    asset_arr = pa.DictionaryArray.from_arrays(zeros32, pa.array([asset], type=pa.string()))
    src = pa.DictionaryArray.from_arrays(zeros32, pa.array(["train"], type=pa.string()))
    null = pa.nulls(rows, DICT_STR)
    ts_arr = pa.array(ts, type=pa.int64()).cast(TS)
    return pa.RecordBatch.from_arrays(
        [
            ts_arr,
            ts_arr,
            tags.cast(DICT_STR),
            pa.array(vals, type=pa.float64(), from_pandas=True),
            pa.array(np.zeros(rows, dtype=np.int16)),
            zeros32,
            src,
            asset_arr,
            null,
            null,
            null,
            null,
            null,
            null,
        ],
        schema=CONTEXTUALIZED_SAMPLES,
    )


def features_from_samples(
    batches: Sequence[pa.RecordBatch],
    spec: WindowSpec,
    *,
    spectral: Sequence[str] = (),
    n_bands: int = 8,
    feature_order: Sequence[str] | None = None,
    keep_gated: bool = False,
) -> TrainingSet:
    """Window and featurize samples exactly as the pipeline does; gated windows are dropped unless kept."""
    from inference.features import FeatureExtractor
    from inference.windows import Windower

    win = Windower(spec)
    for b in batches:
        win.add(b)
    far_future = 2**62
    windows = win.ready(now_us=far_future)
    if not keep_gated:
        windows = [w for w in windows if not (w.flags & GATING_FLAGS)]
    fx = FeatureExtractor(spec.grid_hz, spectral, n_bands)
    names, x, n_valid = fx.matrix(windows)
    if feature_order is not None:
        idx = {n: i for i, n in enumerate(names)}
        x = (
            np.stack(
                [x[:, idx[n]] if n in idx else np.full(len(windows), np.nan) for n in feature_order], axis=1
            )
            if windows
            else np.zeros((0, len(feature_order)))
        )
        names = list(feature_order)
    ok = np.isfinite(x).all(axis=1) & (n_valid > 0) if len(windows) else np.zeros(0, dtype=bool)
    starts = np.array([w.start_us for w in windows], dtype=np.int64)
    return TrainingSet(names, x[ok], starts[ok], window_s=spec.window_s, hop_s=spec.hop_s,
                       units=signal_units(batches, spec.signal_key),
                       contexts=[w.context for w, good in zip(windows, ok.tolist(), strict=True) if good])


def signal_units(batches: Sequence[pa.RecordBatch], signal_key: str) -> dict[str, str]:
    """The unit of each signal (tag or measure, as ``signal_key`` names features) in samples that carry a
    ``unit`` column: what an alarm's explanation states its deviation in."""
    out: dict[str, str] = {}
    for b in batches:
        names = b.schema.names
        key = "measure" if signal_key == "measure" and "measure" in names else "tag"
        if "unit" not in names or key not in names:
            continue
        pairs = pa.table({"s": b.column(key).cast(pa.string()), "u": b.column("unit").cast(pa.string())})
        for row in pairs.group_by(["s", "u"]).aggregate([]).to_pylist():
            if row["s"] and row["u"]:
                out.setdefault(str(row["s"]), str(row["u"]))
    return out


def fingerprint(x: np.ndarray, names: Sequence[str], sources: Sequence[str]) -> dict[str, Any]:
    h = hashlib.sha256()
    h.update(json.dumps(list(names)).encode())
    h.update(np.ascontiguousarray(x, dtype=np.float64).tobytes())
    return {
        "sha256": h.hexdigest(),
        "windows": int(x.shape[0]),
        "features": len(names),
        "sources": list(sources),
    }


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_historian(dsn: str, asset: str, t_from: Any, t_to: Any) -> pa.RecordBatch:
    """Samples of one equipment from the historian's ``samples`` table as a CONTEXTUALIZED_SAMPLES batch,
    with their ``measure`` (what the contextualizer stored), so ``signal_key = "measure"`` names the features
    as the live pipeline does."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT ts, tag::text, value, quality, measure::text FROM samples "
            "WHERE asset = %s AND ts >= %s AND ts < %s ORDER BY ts",
            (asset, t_from, t_to),
        ).fetchall()
    if not rows:
        raise ValueError(f"no samples of {asset} between {t_from} and {t_to} in the historian")
    ts_us = np.array([int(r[0].timestamp() * 1e6) for r in rows], dtype=np.int64)
    tags = [r[1] for r in rows]
    vals = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64)
    q = np.array([r[3] for r in rows], dtype=np.int16)
    from edge.core.datamodel import samples_from_arrays

    s = samples_from_arrays(ts_us, tags, vals, source="historian", quality=q)
    n = s.num_rows
    a = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([asset]))
    measure = pa.array([r[4] for r in rows], type=pa.string()).dictionary_encode().cast(DICT_STR)
    null = pa.nulls(n, DICT_STR)
    return pa.RecordBatch.from_arrays(
        [*s.columns, a.cast(DICT_STR), measure, null, null, null, null, null], schema=CONTEXTUALIZED_SAMPLES
    )


def signals_of(batch: pa.RecordBatch, signal_key: str) -> list[str]:
    """The signal names the windower builds of ``batch`` under ``signal_key`` (measure, else the tag)."""
    import pyarrow.compute as pc

    tag = batch.column("tag").cast(pa.string())
    if signal_key == "measure" and "measure" in batch.schema.names:
        tag = pc.coalesce(batch.column("measure").cast(pa.string()), tag)
    return sorted(str(v) for v in pc.unique(tag).to_pylist() if v is not None)
