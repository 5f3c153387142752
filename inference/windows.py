"""Event-time windows per equipment, with the equipment's tags aligned to one grid.

Rules (all in event time, microseconds UTC):

* Windows start at multiples of ``hop_s`` since the epoch and last ``window_s``; ``hop_s == window_s`` is
  tumbling, ``hop_s < window_s`` sliding. A window closes when the equipment's watermark (its newest sample
  time minus ``allowed_lateness_s``) passes its end, or, for an equipment that went quiet, when the wall clock
  passes its end by ``allowed_lateness_s + idle_close_s`` (``ready(now_us)``; ``ready()`` without a wall time
  closes by the watermark only: ``clock = "event"``, for replays of history). Windows with no sample at all
  are skipped, not emitted.
* Grid: ``grid_hz`` cells per second from the window start. A cell's value is the mean of the good samples in
  it; an empty cell holds the last good value for at most ``max_hold_s`` (also from before the window start),
  else it is NaN (a gap). Samples of quality BAD are never used.
* Late samples: a sample older than the start of the earliest open window is dropped, counted in
  ``late_dropped``, and the next window of that equipment carries ``QualityFlag.LATE``.
* ``good_fraction`` = min(share of grid cells over all the equipment's known signals that hold a good value,
  share of the window's samples with quality other than BAD). Below ``min_good_fraction`` the window gets
  ``WINDOW_LOW_COVERAGE``; any BAD sample gives ``WINDOW_BAD_SAMPLES``. ``flags`` also ORs the samples'
  own QualityFlags. ``gated(flags)`` says whether a window must not raise an alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edge.core.datamodel import (
    WINDOW_BAD_SAMPLES,
    WINDOW_LOW_COVERAGE,
    WINDOW_MISSING_FEATURE,
    Quality,
    QualityFlag,
)
from inference.sample_buffer import SampleBuffer

GATING_FLAGS = int(QualityFlag.STALE | QualityFlag.STUCK) | WINDOW_LOW_COVERAGE | WINDOW_MISSING_FEATURE

MES_COLUMNS = ("work_order", "product", "batch", "shift")
US = 1_000_000


def gated(flags: int) -> bool:
    """True when a window's flags say its data is bad or stale: it is scored, but never raises an alarm."""
    return bool(int(flags) & GATING_FLAGS)


def _default(name: str) -> Any:
    from inference.settings import InferenceSettings

    return InferenceSettings.model_fields[name].default


@dataclass(frozen=True)
class WindowSpec:
    """The windowing part of ``InferenceSettings``; its defaults are the settings model's (one source)."""

    window_s: float = _default("window_s")
    hop_s: float = _default("hop_s")
    grid_hz: float = _default("grid_hz")
    min_good_fraction: float = _default("min_good_fraction")
    max_hold_s: float = _default("max_hold_s")
    allowed_lateness_s: float = _default("allowed_lateness_s")
    idle_close_s: float = _default("idle_close_s")
    signal_key: str = _default("signal_key")

    @classmethod
    def from_settings(cls, s: Any) -> WindowSpec:
        return cls(
            window_s=s.window_s,
            hop_s=s.hop_s,
            grid_hz=s.grid_hz,
            min_good_fraction=s.min_good_fraction,
            max_hold_s=s.max_hold_s,
            allowed_lateness_s=s.allowed_lateness_s,
            idle_close_s=s.idle_close_s,
            signal_key=s.signal_key,
        )

    @property
    def window_us(self) -> int:
        return round(self.window_s * US)

    @property
    def hop_us(self) -> int:
        return round(self.hop_s * US)

    @property
    def n_grid(self) -> int:
        return max(1, round(self.window_s * self.grid_hz))

    @property
    def dt_s(self) -> float:
        return 1.0 / self.grid_hz

    @property
    def hold_cells(self) -> int:
        """Grid cells a value is held forward (``max_hold_s`` on the grid)."""
        return math.floor(self.max_hold_s * self.grid_hz + 1e-9)


@dataclass
class Window:
    asset: str
    start_us: int
    end_us: int
    signals: list[str]
    grid: np.ndarray  # (len(signals), n_grid) float64, NaN = gap
    n_samples: int
    good_fraction: float
    flags: int
    context: dict[str, str | None]  # shared by an equipment's windows while it is unchanged: read-only

    @property
    def gated(self) -> bool:
        return gated(self.flags)


@dataclass
class _Asset:
    signals: dict[str, int] = field(default_factory=dict)
    samples: SampleBuffer = field(default_factory=SampleBuffer)
    max_ts: int = -(2**62)
    next_start: int | None = None
    late_pending: bool = False
    ctx_ts: list[int] = field(default_factory=list)
    ctx_val: list[tuple[str | None, ...]] = field(default_factory=list)
    # the context dict handed out last (values, columns, dict) and the empty one: windows share them while
    # the context is unchanged, so consumers can compare contexts by identity (build_insights' cache)
    ctx_shared: tuple[tuple[str | None, ...], list[str], dict[str, str | None]] | None = None
    no_ctx: dict[str, str | None] = field(default_factory=dict)


def _codes(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[Any]]:
    """Integer codes (-1 for null) and the dictionary values of a (possibly dictionary) column."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    idx = arr.indices.to_numpy(zero_copy_only=False)
    codes = np.where(arr.is_valid().to_numpy(zero_copy_only=False), idx, -1).astype(np.int64)
    return codes, arr.dictionary.to_pylist()


class Windower:
    """Accumulates contextualized samples per equipment and hands out closed windows."""

    def __init__(self, spec: WindowSpec) -> None:
        if spec.hop_s > spec.window_s:
            raise ValueError("hop_s must not exceed window_s (samples between windows would be lost)")
        self.spec = spec
        self.assets: dict[str, _Asset] = {}
        self.late_dropped = 0
        self.bad_samples = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        spec = self.spec
        asset_codes, asset_names = _codes(batch.column("asset"))
        tag = batch.column("tag")
        if spec.signal_key == "measure" and "measure" in batch.schema.names:
            measure = batch.column("measure")
            signal = pc.coalesce(measure.cast(pa.string()), tag.cast(pa.string()))
        else:
            signal = tag
        sig_codes, sig_names = _codes(signal)
        ts = batch.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
        val = batch.column("value").to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        val = np.where(batch.column("value").is_valid().to_numpy(zero_copy_only=False), val, np.nan)
        qual = batch.column("quality").to_numpy(zero_copy_only=False).astype(np.int16)
        flg = batch.column("flags").to_numpy(zero_copy_only=False).astype(np.int32)
        ctx_cols = [c for c in MES_COLUMNS if c in batch.schema.names]
        ctx_codes = [_codes(batch.column(c)) for c in ctx_cols]
        # the rows of each equipment (in batch order) from one stable sort, not one scan per equipment
        by_asset = np.argsort(asset_codes, kind="stable")
        sorted_codes = asset_codes[by_asset]
        cuts = np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(by_asset)], strict=True):
            a_code = int(sorted_codes[lo])
            if a_code < 0:
                continue  # unmapped samples carry no equipment: nothing to window
            name = str(asset_names[a_code])
            st = self.assets.get(name)
            if st is None:
                st = self.assets[name] = _Asset()
            rows = by_asset[lo:hi]
            a_ts = ts[rows]
            # map this batch's signal codes to the asset's signal ids
            local = np.full(len(sig_names) + 1, -1, dtype=np.int32)
            for code in np.unique(sig_codes[rows]):
                if code < 0:
                    continue
                sname = str(sig_names[code])
                local[code] = st.signals.setdefault(sname, len(st.signals))
            a_sig = local[sig_codes[rows]]
            keep = a_sig >= 0
            if st.next_start is not None:
                late = a_ts < st.next_start
                n_late = int(np.count_nonzero(late & keep))
                if n_late:
                    self.late_dropped += n_late
                    st.late_pending = True
                    keep &= ~late
            if not keep.all():
                rows, a_ts, a_sig = rows[keep], a_ts[keep], a_sig[keep]
            if rows.size == 0:
                continue
            if a_ts.size > 1 and np.any(a_ts[1:] < a_ts[:-1]):
                order = np.argsort(a_ts, kind="stable")
                rows, a_ts, a_sig = rows[order], a_ts[order], a_sig[order]
            st.samples.append(a_ts, a_sig, val[rows], qual[rows], flg[rows])
            st.max_ts = max(st.max_ts, int(a_ts.max()))
            if st.next_start is None:
                first = int(a_ts.min())
                st.next_start = (first // spec.hop_us) * spec.hop_us
            if ctx_codes:
                combo = np.stack([c[0][rows] for c in ctx_codes], axis=1)
                change = np.ones(len(rows), dtype=bool)
                change[1:] = np.any(combo[1:] != combo[:-1], axis=1)
                for i in np.flatnonzero(change):
                    values = tuple(
                        None if combo[i, j] < 0 else str(ctx_codes[j][1][combo[i, j]])
                        for j in range(len(ctx_cols))
                    )
                    if not st.ctx_val or st.ctx_val[-1] != values:
                        st.ctx_ts.append(int(a_ts[i]))
                        st.ctx_val.append(values)
                self._ctx_cols = ctx_cols

    def watermark_passed(self) -> bool:
        """Whether some equipment's watermark passed the end of its next window: ``ready()`` has work
        (a window to hand out or an empty one to skip). Cheap (no merging), so a caller can ask it after
        every ``add`` and close windows as soon as they can close instead of on a timer."""
        lateness = round(self.spec.allowed_lateness_s * US)
        window_us = self.spec.window_us
        return any(
            st.next_start is not None and st.next_start + window_us <= st.max_ts - lateness
            for st in self.assets.values()
        )

    def ready(self, now_us: int | None = None) -> list[Window]:
        """Windows closed by the watermark (or, given ``now_us``, by the idle rule), oldest first."""
        spec = self.spec
        out: list[Window] = []
        lateness = round(spec.allowed_lateness_s * US)
        for name, st in self.assets.items():
            if st.next_start is None:
                continue
            watermark = st.max_ts - lateness
            if now_us is not None:
                watermark = max(watermark, now_us - lateness - round(spec.idle_close_s * US))
            if st.next_start + spec.window_us > watermark:
                continue
            ts, sig, val, qual, flg = st.samples.columns()
            while st.next_start + spec.window_us <= watermark:
                start = st.next_start
                end = start + spec.window_us
                lo = int(np.searchsorted(ts, start, "left"))
                hi = int(np.searchsorted(ts, end, "left"))
                if hi > lo:
                    out.append(self._build(name, st, start, end, lo, hi, ts, sig, val, qual, flg))
                    st.next_start = start + spec.hop_us
                else:
                    # nothing in this window: jump to the first window holding the next sample
                    if hi >= len(ts):
                        st.next_start = max(
                            start + spec.hop_us,
                            ((watermark - spec.window_us) // spec.hop_us + 1) * spec.hop_us,
                        )
                        break
                    nxt = int(ts[hi])
                    st.next_start = max(
                        start + spec.hop_us, ((nxt - spec.window_us) // spec.hop_us + 1) * spec.hop_us
                    )
            self._prune(st)
        out.sort(key=lambda w: (w.end_us, w.asset))
        return out

    def _prune(self, st: _Asset) -> None:
        assert st.next_start is not None
        keep_from = st.next_start - round(self.spec.max_hold_s * US) - 1
        st.samples.drop_before(keep_from)
        if len(st.ctx_ts) > 1:
            i = int(np.searchsorted(np.asarray(st.ctx_ts), keep_from, "right")) - 1
            if i > 0:
                del st.ctx_ts[:i]
                del st.ctx_val[:i]

    def _build(
        self,
        name: str,
        st: _Asset,
        start: int,
        end: int,
        lo: int,
        hi: int,
        ts: np.ndarray,
        sig: np.ndarray,
        val: np.ndarray,
        qual: np.ndarray,
        flg: np.ndarray,
    ) -> Window:
        """The window [start, end) of samples ``[lo, hi)`` of the equipment's sorted columns."""
        from inference.window_kernel import window_cells

        spec = self.spec
        lo_hold = int(np.searchsorted(ts, start - round(spec.max_hold_s * US), "left"))
        n_samples = hi - lo
        # the prior value per signal is the last good finite sample in [start - hold, start)
        grid, n_bad, flags, uncertain = window_cells(
            ts, sig, val, qual, flg, lo_hold, lo, hi, start, end, len(st.signals), spec.n_grid,
            spec.hold_cells, int(Quality.BAD), int(Quality.UNCERTAIN))
        self.bad_samples += n_bad
        flags = int(flags)
        if uncertain:
            flags |= int(QualityFlag.UNCERTAIN_SOURCE)
        if n_bad:
            flags |= WINDOW_BAD_SAMPLES
        if st.late_pending:
            flags |= int(QualityFlag.LATE)
            st.late_pending = False
        coverage = float(np.count_nonzero(np.isfinite(grid))) / float(max(1, grid.size))
        good_share = 1.0 - n_bad / n_samples if n_samples else 0.0
        good_fraction = min(coverage, good_share)
        if good_fraction < spec.min_good_fraction:
            flags |= WINDOW_LOW_COVERAGE
        context = st.no_ctx
        cols = getattr(self, "_ctx_cols", [])
        if st.ctx_ts:
            i = int(np.searchsorted(np.asarray(st.ctx_ts), end, "left")) - 1
            if i >= 0:
                vals = st.ctx_val[i]
                shared = st.ctx_shared
                if shared is None or shared[0] is not vals or shared[1] != cols:
                    shared = st.ctx_shared = (vals, list(cols), dict(zip(cols, vals, strict=False)))
                context = shared[2]
        names = list(st.signals)
        return Window(name, start, end, names, grid, n_samples, good_fraction, flags, context)
