"""Insight ids of the columnar path: the Numba BLAKE2b gives hashlib's digests (``insight_id``) for every row,
stable across runs (a fixed digest), unique per window, and ``build_insights`` gives the same rows as the
one-row helpers (ids, top features JSON, severities)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from inference.idhash import insight_id, insight_id_column
from inference.insights import build_insights
from inference.severity import SeverityTracker
from inference.top_features import top_features


def test_columnar_ids_equal_hashlib_for_every_row() -> None:
    rng = np.random.default_rng(7)
    # short and long asset paths (more than one 128-byte block), non-ASCII, negative and large timestamps
    assets = [("x" * int(rng.integers(0, 300))) + f"site/ü/eq{i % 23}" for i in range(400)]
    starts = rng.integers(-(10**15), 10**17, size=400)
    ends = starts + rng.integers(0, 10**8, size=400)
    for model, version in (("pump-pca", "3"), ("m" * 150, "12.1")):
        col = insight_id_column(model, version, pa.array(assets).dictionary_encode(), starts, ends)
        rows = zip(assets, starts.tolist(), ends.tolist(), strict=True)
        assert col.to_pylist() == [insight_id(model, version, a, s, e) for a, s, e in rows]


def test_ids_are_stable_across_runs_and_unique() -> None:
    # a fixed digest: the same window and model version keep their id across processes and releases
    col = insight_id_column("pump-pca", "3", pa.array(["acme/plant1/pump1"]).dictionary_encode(), [0], [10])
    assert col.to_pylist() == [insight_id("pump-pca", "3", "acme/plant1/pump1", 0, 10)]
    assert col[0].as_py() == "8ccf2345ca51c1788cd7d3276f139bce"  # the id of this window before the rewrite

    n_assets, n_windows = 50, 8
    kw: dict[str, Any] = {
        "model": "pump-pca",
        "version": "3",
        "sha256": "ab" * 32,
        "threshold": 1.0,
        "feature_names": ["a__mean", "b__rms", "c__std"],
        "assets": [f"site/line1/eq{i}" for i in range(n_assets)] * n_windows,
        "window_start_us": np.repeat(np.arange(n_windows) * 10_000_000, n_assets),
        "window_end_us": np.repeat(np.arange(1, n_windows + 1) * 10_000_000, n_assets),
        "scores": np.linspace(0, 2, n_assets * n_windows),
        "contributions": None,
        "flags": np.zeros(n_assets * n_windows, dtype=np.int64),
        "gated": np.zeros(n_assets * n_windows, dtype=bool),
        "contexts": [{}] * (n_assets * n_windows),
    }
    first = build_insights(tracker=SeverityTracker(), **kw).column("insight_id").to_pylist()
    again = build_insights(tracker=SeverityTracker(), **kw).column("insight_id").to_pylist()
    assert first == again and len(set(first)) == n_assets * n_windows
    other = build_insights(tracker=SeverityTracker(), **{**kw, "version": "4"})
    assert not set(other.column("insight_id").to_pylist()) & set(first)


def test_build_insights_matches_the_row_helpers() -> None:
    rng = np.random.default_rng(3)
    n, names = 120, [f"s{i}__mean" for i in range(7)]
    contributions = rng.normal(size=(n, 7)) * 10.0 ** rng.integers(-6, 8, size=(n, 1))
    contributions[::9] = 0.0  # ties everywhere: the lowest index first
    contributions[4, 2] = np.nan
    scores = rng.gamma(2.0, 0.6, size=n)
    scores[::13] = np.nan
    gated = rng.random(n) < 0.1
    assets = [f"eq/{i % 4}" for i in range(n)]
    b = build_insights(
        model="m", version="1", sha256="0" * 64, threshold=1.0, feature_names=names, assets=assets,
        window_start_us=np.arange(n) * 10, window_end_us=np.arange(n) * 10 + 10, scores=scores,
        contributions=contributions, flags=np.zeros(n, dtype=np.int64), gated=gated,
        contexts=[{"work_order": f"WO-{i % 3}", "batch": None} for i in range(n)],
        tracker=SeverityTracker(), k=3,
    ).to_pylist()
    ref = SeverityTracker()
    for i, row in enumerate(b):
        assert row["insight_id"] == insight_id("m", "1", assets[i], i * 10, i * 10 + 10)
        assert row["top_features"] == top_features(names, contributions[i], 3)
        g = bool(gated[i]) or not np.isfinite(scores[i])
        assert row["gated"] == g
        assert row["severity"] == ref.update(assets[i], "m", float(scores[i]), 1.0, g)
        assert json.loads(row["context"]) == {"batch": None, "work_order": f"WO-{i % 3}"}


def test_top_features_text_at_extreme_magnitudes() -> None:
    """The columnar JSON writes numbers as Python's repr of the 6-digit rounding: ties, carries (9.9999996),
    the switches to exponent form (1e-05, 1e+16), subnormals, negative zero."""
    vals = [9.9999996, 999999.6, 0.000099999996, 1e-4, 1e-5, 9.9999996e15, 1e16, 1e15, 1.2345678e17, -0.0,
            5e-324, 1.7976931348623157e308, 0.5, 2.5, 1234565.0, 0.1234565, -9.9999996e-5, 1e5, 3.0,
            12345678.9, 1.23456789e-310, -7.7e-315]
    names = [f"f{i}" for i in range(len(vals))]
    c = np.array([vals, vals[::-1]])
    b = build_insights(
        model="m", version="1", sha256="0" * 64, threshold=1.0, feature_names=names, assets=["a", "b"],
        window_start_us=[0, 0], window_end_us=[1, 1], scores=np.zeros(2), contributions=c,
        flags=[0, 0], gated=[False, False], contexts=[{}, {}], tracker=SeverityTracker(), k=len(vals),
    )
    assert b.column("top_features").to_pylist() == [top_features(names, row, len(vals)) for row in c]


def test_build_insights_follows_changing_assets_and_contexts_between_ticks() -> None:
    """The per-(tracker, model) cache (asset column, severity slots, context column) must follow what each
    tick passes: new equipment, a reordered or shorter tick, a changed context (a new dict), float32
    contributions with values Python must format."""
    rng = np.random.default_rng(11)
    names = ["a__mean", "b__rms", "c__std", "d__max"]
    tracker, ref = SeverityTracker(hysteresis_windows=1), SeverityTracker(hysteresis_windows=1)
    ctx = {f"eq{i}": {"work_order": f"WO-{i}"} for i in range(6)}
    ticks = [["eq0", "eq1", "eq2"], ["eq0", "eq1", "eq2"], ["eq2", "eq0", "eq1"], ["eq3", "eq4", "eq5"]]
    ticks += [["eq2", "eq0", "eq1", "eq3"], ["eq5"], ["eq0", "eq1"], ["eq0", "eq1"]]
    for t, assets in enumerate(ticks):
        if t == 7:  # the same equipment as the tick before, eq0's context changed (a new dict)
            ctx["eq0"] = {"work_order": "WO-changed", "batch": "B1"}
        n = len(assets)
        contributions = rng.normal(size=(n, len(names))).astype(np.float32)
        contributions[0, 1] = np.float32(1e-40)  # subnormal: Python's formatting
        scores = rng.gamma(2.0, 0.7, size=n)
        b = build_insights(
            model="m", version="1", sha256="0" * 64, threshold=1.0, feature_names=names, assets=assets,
            window_start_us=np.full(n, t * 10), window_end_us=np.full(n, t * 10 + 10), scores=scores,
            contributions=contributions, flags=np.zeros(n, dtype=np.int64), gated=np.zeros(n, dtype=bool),
            contexts=[ctx[a] for a in assets], tracker=tracker,
        ).to_pylist()
        for i, row in enumerate(b):
            assert row["asset"] == assets[i]
            assert row["insight_id"] == insight_id("m", "1", assets[i], t * 10, t * 10 + 10)
            assert row["severity"] == ref.update(assets[i], "m", float(scores[i]), 1.0, False)
            assert row["top_features"] == top_features(names, contributions[i], 3)
            assert json.loads(row["context"]) == ctx[assets[i]]
