"""Features of closed windows: the Numba kernels over every (window, signal) row, as one features batch.

Feature names are ``<signal>__<stat>`` with the stats of ``inference.kernels.STATS``, plus
``<signal>__band<i>``, ``<signal>__centroid`` and ``<signal>__dom_freq`` for spectral signals. A features
batch (``edge.core.datamodel.features_schema(names)``) holds the union of the names of its windows; a feature
an
equipment does not have is null there.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from edge.core.datamodel import DICT_STR, TS, WINDOW_MISSING_FEATURE, features_schema
from inference.windows import Window


def feature_names(signals: Iterable[str], spectral: Iterable[str] = (), n_bands: int = 8) -> list[str]:
    from inference.kernels import STATS, spectral_names

    spec = set(spectral)
    names: list[str] = []
    for s in signals:
        names.extend(f"{s}__{st}" for st in STATS)
        if s in spec:
            names.extend(f"{s}__{st}" for st in spectral_names(n_bands))
    return names


def split_over_threads(part: Callable[[int, int], None], n_rows: int, threads: int,
                       pool: ThreadPoolExecutor) -> None:
    """``part(lo, hi)`` over rows [0, n_rows) in ``threads`` contiguous parts: the calling thread runs the
    first itself and ``pool`` (``threads - 1`` workers) the others: the caller would otherwise sit idle
    while it waits, and there is one thread fewer to wake (a short call is over before the scheduler has
    spread freshly woken threads over the cores)."""
    bounds = np.linspace(0, n_rows, threads + 1).astype(int)
    futures = [pool.submit(part, int(a), int(b)) for a, b in itertools.pairwise(bounds[1:])]
    try:
        part(int(bounds[0]), int(bounds[1]))
    finally:
        for f in futures:
            f.result()


class FeatureExtractor:
    def __init__(
        self, grid_hz: float, spectral_signals: Sequence[str] = (), n_bands: int = 8, threads: int = 1
    ) -> None:
        self.grid_hz = grid_hz
        self.spectral = frozenset(spectral_signals)
        self.n_bands = n_bands
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def matrix(self, windows: Sequence[Window]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(names, values (n_windows, n_names), NaN where a window lacks a feature; min n_valid)."""
        from inference.kernels import N_STATS, spectral_names

        if not windows:
            return [], np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
        rows = np.ascontiguousarray(np.concatenate([w.grid for w in windows], axis=0), dtype=np.float64)
        row_sig: list[str] = []
        for w in windows:
            row_sig.extend(w.signals)
        spectral = np.fromiter((s in self.spectral for s in row_sig), dtype=np.bool_, count=len(row_sig))
        stats, n_valid, spec = self._row_features(rows, spectral)
        # names: union in order of first appearance
        index: dict[str, int] = {}
        for w in windows:
            for s in w.signals:
                if f"{s}__mean" not in index:
                    for name in feature_names([s], self.spectral, self.n_bands):
                        index[name] = len(index)
        out = np.full((len(windows), len(index)), np.nan)
        nv_min = np.zeros(len(windows), dtype=np.int64)
        r = 0
        snames = spectral_names(self.n_bands)
        for wi, w in enumerate(windows):
            lo = r
            for s in w.signals:
                base = index[f"{s}__mean"]
                out[wi, base : base + N_STATS] = stats[r]
                if spectral[r]:
                    sb = index[f"{s}__{snames[0]}"]
                    out[wi, sb : sb + len(snames)] = spec[r]
                r += 1
            nv_min[wi] = int(n_valid[lo:r].min()) if r > lo else 0
        return list(index), out, nv_min

    def _row_features(
        self, rows: np.ndarray, spectral: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Statistics (rows, N_STATS), n_valid (rows,) and spectral features (rows, n_bands + 2; meaningful
        where ``spectral``) of every row, split over the feature threads. Power-of-two rows run the fused
        kernel (statistics and a real FFT in one Numba pass, ``inference.rfft_kernel``); other lengths the
        statistics kernel, then numpy's FFT for the spectral rows."""
        from inference.kernels import N_STATS, is_pow2, spectral_rows, stats_rows_into
        from inference.rfft_kernel import features_rows_into, rfft_tables

        n_rows, n = rows.shape
        stats = np.empty((n_rows, N_STATS), dtype=np.float64)
        n_valid = np.empty(n_rows, dtype=np.int64)
        spec = np.zeros((n_rows, self.n_bands + 2), dtype=np.float64)
        dt = 1.0 / self.grid_hz
        fused = is_pow2(n) and n >= 4 and bool(spectral.any())
        if fused:
            tables = rfft_tables(n)

            def part(lo: int, hi: int) -> None:
                features_rows_into(rows, dt, self.grid_hz, self.n_bands, spectral, stats, spec, n_valid,
                                   lo, hi, *tables)
        else:

            def part(lo: int, hi: int) -> None:
                stats_rows_into(rows, dt, stats, n_valid, lo, hi)

        if self.threads > 1 and n_rows >= 64:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="features")
            split_over_threads(part, n_rows, self.threads, self._pool)
        else:
            part(0, n_rows)
        if not fused and spectral.any():
            spec[spectral] = spectral_rows(rows[spectral], self.grid_hz, self.n_bands)
        return stats, n_valid, spec

    def compute(self, windows: Sequence[Window]) -> pa.RecordBatch:
        names, values, n_valid = self.matrix(windows)
        return features_batch(windows, names, values, n_valid)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def features_batch(
    windows: Sequence[Window], names: Sequence[str], values: np.ndarray, n_valid: np.ndarray | None = None
) -> pa.RecordBatch:
    schema = features_schema(names)
    flags = np.array([w.flags for w in windows], dtype=np.int32)
    if n_valid is not None and len(windows):
        flags = np.where(n_valid == 0, flags | WINDOW_MISSING_FEATURE, flags).astype(np.int32)
    cols: list[pa.Array] = [
        pa.array([w.start_us for w in windows], type=pa.int64()).cast(TS),
        pa.array([w.end_us for w in windows], type=pa.int64()).cast(TS),
        pa.array([w.asset for w in windows], type=pa.string()).dictionary_encode().cast(DICT_STR),
        pa.array([w.n_samples for w in windows], type=pa.int32()),
        pa.array([w.good_fraction for w in windows], type=pa.float64()),
        pa.array(flags, type=pa.int32()),
    ]
    for j in range(len(names)):
        col = values[:, j] if len(windows) else np.zeros(0)
        cols.append(pa.array(col, type=pa.float64(), from_pandas=True))  # NaN -> null (feature absent)
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def model_inputs(features: pa.RecordBatch, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, len(names)) float32-ready matrix of ``names`` in order, and a per-row missing mask.

    A missing column or a null value is filled with 0.0 and the row marked missing (the caller gates it):
    no NaN reaches a model.
    """
    n = features.num_rows
    x = np.zeros((n, len(names)), dtype=np.float64)
    missing = np.zeros(n, dtype=bool)
    have = set(features.schema.names)
    for j, name in enumerate(names):
        if name not in have:
            missing[:] = True
            continue
        col = features.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(col)
        if bad.any():
            missing |= bad
            col = np.where(bad, 0.0, col)
        x[:, j] = col
    return x, missing


@functools.lru_cache(maxsize=256)
def _columns(names: tuple[str, ...], wanted: tuple[str, ...]) -> tuple[np.ndarray, bool, bool]:
    """(column of each wanted feature in ``names`` or -1, all present, the identity gather)."""
    index = {n: i for i, n in enumerate(names)}
    cols = np.array([index.get(n, -1) for n in wanted], dtype=np.int64)
    cols.setflags(write=False)
    every = bool((cols >= 0).all())
    return cols, every, every and len(cols) == len(names) and bool((cols == np.arange(len(cols))).all())


def model_inputs_from_matrix(names: Sequence[str], values: np.ndarray,
                             wanted: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``model_inputs`` from the extractor's (names, values) matrix: one gather, no Arrow round trip (the
    column lookup is cached per (names, wanted); all-present and identity gathers take a shorter path)."""
    cols, every, identity = _columns(tuple(names), tuple(wanted))
    rows = values.shape[0]
    if rows and every:
        sub = values if identity else values[:, cols]
        finite = np.isfinite(sub)
        if finite.all():
            return sub.astype(np.float32), np.zeros(rows, dtype=bool)
        return np.where(finite, sub, 0.0).astype(np.float32), ~finite.all(axis=1)
    x = np.zeros((rows, len(wanted)), dtype=np.float32)
    missing = np.zeros(rows, dtype=bool)
    have = cols >= 0
    if not have.all():
        missing[:] = True
    if rows and have.any():
        sub = values[:, cols[have]]
        bad = ~np.isfinite(sub)
        if bad.any():
            missing |= bad.any(axis=1)
            sub = np.where(bad, 0.0, sub)
        x[:, have] = sub
    return x, missing
