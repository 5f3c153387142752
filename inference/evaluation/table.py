"""Labelled tables: a wide CSV or Parquet file (a time column, signal columns, a label column) or one whose
labels are time spans from a JSON file (NAB's ``combined_windows.json``), read into event-time arrays.

Without a time column the rows are spaced ``period_s`` apart from 2000-01-01 (``rows_per_second`` = 1 /
``period_s``). ``fault_from_row`` labels every row from that index on (Tennessee Eastman's test files: the
fault is introduced at row 160); a label column, if any, keeps its values there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TIME_NAMES = ("datetime", "timestamp", "ts", "time")
LABEL_NAMES = ("anomaly", "label", "fault")
ALWAYS_IGNORED = ("anomaly", "changepoint")  # SKAB's label columns, as training_set.read_table does
EPOCH_2000_US = 946_684_800_000_000


class TableError(ValueError):
    """A file cannot be evaluated as given; the message names the file, the column and what to do."""


@dataclass(frozen=True)
class TableOptions:
    time_column: str | None = None
    sep: str | None = None
    label_column: str | None = None
    label_windows: Path | None = None
    label_key: str | None = None
    ignore_columns: Sequence[str] = ()
    signals: Sequence[str] = ()
    period_s: float | None = None
    fault_from_row: int | None = None
    require_labels: bool = True


@dataclass
class LabelledTable:
    path: Path
    ts_us: np.ndarray  # int64, sorted
    signals: dict[str, np.ndarray]
    labels: np.ndarray  # float64 per row, 0 = normal
    windows: list[tuple[int, int]] | None = None  # label spans as inclusive row ranges (from label_windows)
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.ts_us)


def _frame(path: Path, sep: str | None):  # type: ignore[no-untyped-def]
    import polars as pl

    if not path.exists():
        raise TableError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pl.read_parquet(path)
    if sep is None:
        with path.open(errors="replace") as f:
            head = f.readline()
        counts = {s: head.count(s) for s in (",", ";", "\t")}
        sep = max(counts, key=lambda s: counts[s]) if max(counts.values()) else ","
    try:
        return pl.read_csv(path, separator=sep, try_parse_dates=True, infer_schema_length=10_000)
    except Exception as exc:  # polars raises several types for unreadable text
        raise TableError(f"{path}: cannot be read as CSV with separator {sep!r} ({exc}); try --sep") from None


def read_labelled(path: Path, opts: TableOptions) -> LabelledTable:
    import polars as pl

    path = Path(path)
    df = _frame(path, opts.sep)
    cols = list(df.columns)
    notes: list[str] = []
    tcol = opts.time_column
    if tcol is not None and tcol not in cols:
        raise TableError(f"{path}: no time column {tcol!r} (columns: {', '.join(cols)}); check --time-column")
    if tcol is None:
        tcol = next((c for c in cols if c.lower() in TIME_NAMES), None)
    if tcol is None:
        if opts.period_s is None:
            raise TableError(
                f"{path}: no time column (none of {', '.join(TIME_NAMES)}); name it with --time-column, or "
                "give --rows-per-second / --period-s for evenly spaced rows"
            )
        ts_us = EPOCH_2000_US + np.round(np.arange(df.height) * opts.period_s * 1e6).astype(np.int64)
    else:
        t = df.get_column(tcol)
        if t.dtype == pl.Utf8:
            try:
                t = t.str.to_datetime()
            except Exception:
                raise TableError(f"{path}: time column {tcol!r} is not ISO 8601 text or numbers") from None
        if t.dtype.is_temporal():
            ts_us = t.cast(pl.Datetime("us")).cast(pl.Int64).to_numpy()
        elif t.dtype.is_numeric():
            ts_us = np.round(t.cast(pl.Float64).to_numpy() * 1e6).astype(np.int64)
        else:
            raise TableError(f"{path}: time column {tcol!r} has type {t.dtype}; need datetimes or seconds")
    lcol = opts.label_column
    if lcol is not None and lcol not in cols:
        raise TableError(
            f"{path}: no label column {lcol!r} (columns: {', '.join(cols)}); check --label-column")
    if lcol is None and opts.label_windows is None:
        lcol = next((c for c in cols if c.lower() in LABEL_NAMES), None)
    labels = np.zeros(df.height)
    if lcol is not None:
        labels = df.get_column(lcol).cast(pl.Float64).fill_null(0.0).to_numpy().copy()
    windows = None
    if opts.label_windows is not None:
        windows = _label_windows(path, ts_us, opts.label_windows, opts.label_key)
        for lo, hi in windows:
            labels[lo : hi + 1] = 1.0
    if opts.fault_from_row is not None:
        k = opts.fault_from_row
        if not 0 <= k < df.height:
            raise TableError(f"{path}: --fault-from-row {k} is outside its {df.height} rows")
        labels[k:] = np.where(labels[k:] != 0, labels[k:], 1.0)
    if lcol is None and windows is None and opts.fault_from_row is None and opts.require_labels:
        raise TableError(
            f"{path}: no labels: no column named {' / '.join(LABEL_NAMES)}; give --label-column, "
            "--label-windows FILE.json (with --label-key) or --fault-from-row"
        )
    skip = {tcol, lcol, *ALWAYS_IGNORED, *opts.ignore_columns}
    missing = [c for c in (*opts.ignore_columns, *opts.signals) if c not in cols]
    if missing:
        raise TableError(f"{path}: no column {', '.join(map(repr, missing))} (columns: {', '.join(cols)})")
    names = list(opts.signals) or [c for c in cols if c not in skip and df.get_column(c).dtype.is_numeric()]
    if not names:
        raise TableError(f"{path}: no numeric signal columns left (columns: {', '.join(cols)})")
    signals = {c: df.get_column(c).cast(pl.Float64).to_numpy() for c in names}
    if len(ts_us) > 1 and np.any(np.diff(ts_us) < 0):
        order = np.argsort(ts_us, kind="stable")
        ts_us, labels = ts_us[order], labels[order]
        signals = {k: v[order] for k, v in signals.items()}
        notes.append("rows sorted by time")
    return LabelledTable(path, ts_us, signals, labels, windows, notes)


def _label_windows(path: Path, ts_us: np.ndarray, spec: Path, key: str | None) -> list[tuple[int, int]]:
    """Inclusive row ranges of the spans listed for this file (``key``, else the entry whose key ends with
    the file's parent folder and name, or its name)."""
    try:
        doc = json.loads(Path(spec).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TableError(f"{spec}: cannot read label windows ({exc})") from None
    if key is None:
        tails = (f"{path.parent.name}/{path.name}", path.name)
        key = next((k for t in tails for k in doc if k == t or k.endswith("/" + t)), None)
    if key is None or key not in doc:
        raise TableError(f"{spec}: no entry for {path} (give --label-key; keys like {next(iter(doc), '')!r})")
    import polars as pl

    out = []
    for a, b in doc[key]:
        lo_hi = (pl.Series([str(a), str(b)]).str.to_datetime().cast(pl.Datetime("us")).cast(pl.Int64)
                 .to_numpy())
        lo = int(np.searchsorted(ts_us, lo_hi[0], "left"))
        hi = int(np.searchsorted(ts_us, lo_hi[1], "right")) - 1
        if hi >= lo:
            out.append((lo, hi))
    return out
