"""Event-time windows: tumbling and sliding, grid alignment, gaps, late samples, quality, context snapshot."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest

from edge.core.datamodel import CONTEXTUALIZED_SAMPLES, DICT_STR, TS, Quality, QualityFlag, features_schema
from inference.features import FeatureExtractor, features_batch, model_inputs, model_inputs_from_matrix
from inference.kernels import STATS
from inference.windows import (
    WINDOW_BAD_SAMPLES,
    WINDOW_LOW_COVERAGE,
    Windower,
    WindowSpec,
    gated,
)

T0 = 1_700_000_000_000_000 - (1_700_000_000_000_000 % 60_000_000)  # aligned to a minute
US = 1_000_000


def ctx_batch(
    ts_us: Sequence[int],
    tags: Sequence[str],
    values: Sequence[float],
    asset: str | Sequence[str],
    *,
    quality: Sequence[int] | None = None,
    flags: Sequence[int] | None = None,
    work_order: Sequence[str | None] | None = None,
) -> pa.RecordBatch:
    n = len(ts_us)
    assets = [asset] * n if isinstance(asset, str) else list(asset)

    def d(vals: Sequence[str | None]) -> pa.Array:
        return pa.array(list(vals), type=pa.string()).dictionary_encode().cast(DICT_STR)

    null = pa.nulls(n, DICT_STR)
    ts = pa.array(np.asarray(ts_us, dtype=np.int64), type=pa.int64()).cast(TS)
    return pa.RecordBatch.from_arrays(
        [
            ts,
            ts,
            d(tags),
            pa.array(np.asarray(values, dtype=np.float64)),
            pa.array(np.zeros(n, np.int16) if quality is None else np.asarray(quality, np.int16)),
            pa.array(np.zeros(n, np.int32) if flags is None else np.asarray(flags, np.int32)),
            d(["src"] * n),
            d(assets),
            null,
            null,
            d(work_order) if work_order else null,
            null,
            null,
            null,
        ],
        schema=CONTEXTUALIZED_SAMPLES,
    )


def regular(
    seconds: int,
    tags: Sequence[str] = ("a", "b"),
    hz: float = 1.0,
    start: int = T0,
    asset: str = "site/line1/pump1",
    value: float | None = None,
    **kw: object,
) -> pa.RecordBatch:
    n = int(seconds * hz)
    ts = np.repeat(start + (np.arange(n) * US / hz).astype(np.int64), len(tags))
    tg = list(tags) * n
    rng = np.random.default_rng(0)
    vals = np.full(len(ts), value) if value is not None else rng.normal(size=len(ts))
    return ctx_batch(ts, tg, vals, asset, **kw)  # type: ignore[arg-type]


def test_tumbling_windows_close_by_watermark() -> None:
    w = Windower(WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=2))
    w.add(regular(31))
    out = w.ready()
    # samples up to T0+30s, watermark T0+28s: windows [0,10) and [10,20) closed
    assert [(x.start_us - T0) // US for x in out] == [0, 10]
    assert all(x.grid.shape == (2, 10) for x in out)
    assert all(x.good_fraction == 1.0 and not x.gated for x in out)
    w.add(regular(12, start=T0 + 31 * US))  # up to T0+42 s: watermark T0+40 s
    assert [(x.start_us - T0) // US for x in w.ready()] == [20, 30]


def test_sliding_windows_overlap() -> None:
    w = Windower(WindowSpec(window_s=10, hop_s=5, grid_hz=1, allowed_lateness_s=0))
    w.add(regular(30))
    starts = [(x.start_us - T0) // US for x in w.ready()]
    assert starts == [0, 5, 10, 15]


def test_grid_alignment_and_hold() -> None:
    # tag a at 1 Hz, tag b only every 4 s: held for max_hold_s=2 s, then a gap
    ts = [T0 + i * US for i in range(20)] + [T0 + i * US for i in range(0, 20, 4)]
    tags = ["a"] * 20 + ["b"] * 5
    vals = list(range(20)) + [100.0] * 5
    w = Windower(
        WindowSpec(
            window_s=10, hop_s=10, grid_hz=1, max_hold_s=2, allowed_lateness_s=0, min_good_fraction=0.9
        )
    )
    w.add(ctx_batch(ts, tags, vals, "eq"))
    win = w.ready(now_us=T0 + 100 * US)[0]
    b = win.grid[win.signals.index("b")]
    assert np.isnan(b).tolist() == [False, False, False, True] * 2 + [False, False]
    assert win.good_fraction == pytest.approx(18 / 20)
    assert not (win.flags & WINDOW_LOW_COVERAGE)


def test_low_coverage_is_flagged_and_gated() -> None:
    w = Windower(
        WindowSpec(
            window_s=10, hop_s=10, grid_hz=1, max_hold_s=0, allowed_lateness_s=0, min_good_fraction=0.8
        )
    )
    ts = [T0 + i * US for i in (0, 1, 2, 3, 9)]
    w.add(ctx_batch(ts, ["a"] * 5, [1.0] * 5, "eq"))
    w.add(ctx_batch([T0 + 11 * US], ["a"], [1.0], "eq"))
    win = w.ready()[0]
    assert win.good_fraction == pytest.approx(0.5)
    assert win.flags & WINDOW_LOW_COVERAGE and win.gated


def test_bad_quality_samples_are_not_used_and_flagged() -> None:
    n = 10
    ts = [T0 + i * US for i in range(n)]
    q = [int(Quality.BAD) if i in (3, 4, 5) else 0 for i in range(n)]
    vals = [1e9 if i in (3, 4, 5) else 1.0 for i in range(n)]
    w = Windower(
        WindowSpec(
            window_s=10, hop_s=10, grid_hz=1, max_hold_s=0, allowed_lateness_s=0, min_good_fraction=0.8
        )
    )
    w.add(ctx_batch([*ts, T0 + 10 * US], ["a"] * (n + 1), [*vals, 1.0], "eq", quality=[*q, 0]))
    win = w.ready()[0]
    assert np.nanmax(win.grid) == 1.0  # the bad values never reach the grid
    assert win.flags & WINDOW_BAD_SAMPLES
    assert win.good_fraction == pytest.approx(0.7) and win.gated


def test_late_samples_dropped_counted_and_flagged() -> None:
    w = Windower(WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=0))
    w.add(regular(21))
    assert len(w.ready()) == 2
    w.add(ctx_batch([T0 + 5 * US], ["a"], [0.0], "site/line1/pump1"))  # belongs to a closed window
    assert w.late_dropped == 1
    w.add(regular(10, start=T0 + 21 * US))
    nxt = w.ready()
    assert nxt and nxt[0].flags & QualityFlag.LATE and not nxt[0].gated


def test_out_of_order_within_lateness_is_kept() -> None:
    w = Windower(WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=5))
    b = regular(20)
    idx = np.random.default_rng(1).permutation(b.num_rows)
    w.add(b.take(pa.array(idx)))
    w.add(regular(1, start=T0 + 30 * US))
    wins = w.ready()
    assert wins[0].good_fraction == 1.0 and w.late_dropped == 0


def test_equipment_windowed_separately_with_context() -> None:
    a = regular(21, asset="eq/A", work_order=["WO-1"] * 42)
    b = regular(21, asset="eq/B", tags=("x",), work_order=["WO-9"] * 21)
    w = Windower(WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=0))
    w.add(pa.concat_batches([a, b]) if hasattr(pa, "concat_batches") else a)
    if not hasattr(pa, "concat_batches"):
        w.add(b)
    wins = w.ready()
    assert {x.asset for x in wins} == {"eq/A", "eq/B"}
    assert {x.context["work_order"] for x in wins if x.asset == "eq/A"} == {"WO-1"}
    assert {x.context["work_order"] for x in wins if x.asset == "eq/B"} == {"WO-9"}


def test_stale_flag_gates() -> None:
    w = Windower(WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=0))
    w.add(regular(11, flags=[int(QualityFlag.STALE)] * 22))
    win = w.ready()[0]
    assert gated(win.flags)


def test_idle_equipment_closes_on_wall_clock() -> None:
    w = Windower(
        WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=1, idle_close_s=5, max_hold_s=0)
    )
    w.add(regular(4))
    assert w.ready(now_us=T0 + 10 * US) == []
    wins = w.ready(now_us=T0 + 17 * US)
    assert len(wins) == 1 and wins[0].gated  # 4 s of 10: low coverage


def test_features_batch_schema_and_values() -> None:
    w = Windower(WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=0))
    w.add(regular(21))
    wins = w.ready()
    fb = FeatureExtractor(1.0).compute(wins)
    names = [f"{s}__{st}" for s in ("a", "b") for st in STATS]
    assert fb.schema.equals(features_schema(names))
    a_mean = fb.column("a__mean").to_pylist()[0]
    assert a_mean == pytest.approx(float(np.nanmean(wins[0].grid[0])))
    x, missing = model_inputs(fb, ["a__mean", "zz__mean"])
    assert missing.all() and np.isfinite(x).all()


def test_model_inputs_from_matrix_matches_the_arrow_path() -> None:
    """The stage's gather (``model_inputs_from_matrix``) gives what ``model_inputs`` gives on the batch."""
    names = ["a__mean", "a__std", "b__mean"]
    values = np.array([[1.0, 2.0, 3.0], [np.nan, 5.0, 6.0], [7.0, np.inf, 9.0]])
    w = Windower(WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=0))
    w.add(regular(41))
    wins = w.ready()[:3]
    assert len(wins) == 3
    fb = features_batch(wins, names, values)
    for wanted in (names, ["b__mean", "a__mean"], ["a__std", "zz__mean"], ["zz__mean"]):
        x, missing = model_inputs_from_matrix(names, values, wanted)
        x_ref, missing_ref = model_inputs(fb, wanted)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, x_ref.astype(np.float32))
        np.testing.assert_array_equal(missing, missing_ref)


def test_spectral_features_for_vibration_signals() -> None:
    fs = 1024
    t = np.arange(2 * fs) / fs
    v = np.sin(2 * np.pi * 100 * t)
    w = Windower(WindowSpec(window_s=1, hop_s=1, grid_hz=fs, allowed_lateness_s=0, max_hold_s=0))
    w.add(ctx_batch((T0 + t * US).astype(np.int64), ["vib"] * len(t), v, "eq"))
    w.add(ctx_batch([T0 + 3 * US], ["vib"], [0.0], "eq"))
    wins = w.ready()
    fb = FeatureExtractor(fs, ["vib"], n_bands=4).compute(wins)
    assert fb.column("vib__dom_freq").to_pylist()[0] == pytest.approx(100.0)
    assert "vib__band3" in fb.schema.names


def test_context_dict_is_shared_while_unchanged_and_renewed_on_change() -> None:
    # build_insights keeps the context column while the tick's contexts are the same objects
    wo = ["WO-1"] * 40 + ["WO-2"] * 22  # 31 s at 1 Hz x 2 tags: the context changes at 20 s
    w = Windower(WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=0))
    w.add(regular(31, work_order=wo))
    wins = w.ready()
    assert [x.context["work_order"] for x in wins] == ["WO-1", "WO-1", "WO-2"]
    assert wins[0].context is wins[1].context and wins[2].context is not wins[1].context
    w.add(regular(10, start=T0 + 31 * US, work_order=["WO-2"] * 20))
    later = w.ready()
    assert later and all(x.context is wins[2].context for x in later)
