"""``inference.levels``: the per-signal rule on synthetic training windows, and the decision carried by a
trained package (``edge models train --levels auto``) to the features a live window is scored on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.app.cli import main as edge_main
from inference.levels import LEVEL_STATS, LevelRule, decide, level_shift, select
from inference.training_set import TrainingSet

STATS = ("mean", "std", "rms", "min", "max", "slope")


def windows(n: int = 400, seed: int = 0) -> TrainingSet:
    """Training windows of two signals: ``warm`` drifts up by 8 noise sds over the period, ``flat`` is
    steady noise around a large level."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    cols = {"warm": 20.0 + 8.0 * t / n + rng.normal(0, 1.0, n), "flat": 100.0 + rng.normal(0, 1.0, n)}
    names, x = [], []
    for sig, mean in cols.items():
        for st in STATS:
            names.append(f"{sig}__{st}")
            x.append(mean if st in ("mean", "rms", "min", "max") else rng.normal(1.0, 0.1, n))
    return TrainingSet(names, np.stack(x, axis=1), np.arange(n, dtype=np.int64) * 5_000_000)


def test_drifting_signal_loses_its_level_steady_one_keeps_it() -> None:
    ts = windows()
    d = decide(ts, "auto")
    assert d["signals"]["warm"]["level"] is False and d["signals"]["warm"]["shift"] > 4.0
    assert d["signals"]["flat"]["level"] is True and d["signals"]["flat"]["shift"] < 1.0
    kept, decision = select(ts, (), "auto")
    assert decision == d
    warm = {n.split("__")[1] for n in kept.feature_names if n.startswith("warm__")}
    flat = {n.split("__")[1] for n in kept.feature_names if n.startswith("flat__")}
    assert warm == set(STATS) - set(LEVEL_STATS) and flat == set(STATS)
    # the kept columns are the same values, not recomputed
    assert np.array_equal(kept.x[:, kept.feature_names.index("warm__std")],
                          ts.x[:, ts.feature_names.index("warm__std")])


def test_modes_and_statistics_together() -> None:
    ts = windows()
    same, none_decision = select(ts, (), "all")
    assert none_decision is None and same.feature_names == ts.feature_names
    free, d = select(ts, (), "none")
    assert d is not None and not any(v["level"] for v in d["signals"].values())
    assert not any(n.split("__")[1] in LEVEL_STATS for n in free.feature_names)
    both, _ = select(ts, ("mean", "std"), "auto")
    assert both.feature_names == ["warm__std", "flat__mean", "flat__std"]
    with pytest.raises(ValueError, match="no feature left"):
        select(ts, ("mean",), "none")
    with pytest.raises(ValueError, match="levels mode"):
        select(ts, (), "some")


def test_level_shift_edges() -> None:
    rule = LevelRule()
    assert level_shift(np.r_[np.zeros(50), np.ones(50)], rule) == float("inf")  # constant, then moved
    assert level_shift(np.full(100, 3.0), rule) == 0.0
    assert level_shift(np.arange(5.0), rule) == 0.0  # too few windows for a quarter's median
    # a step of 3 robust spreads between the quarters is past the bound, one of 1 is not
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 400)
    assert level_shift(base + np.r_[np.zeros(300), np.full(100, 3.0)], rule) > rule.max_shift
    assert level_shift(base + np.r_[np.zeros(300), np.full(100, 1.0)], rule) < rule.max_shift


def baseline_csv(path: Path, n: int = 4000) -> Path:
    rng = np.random.default_rng(0)
    lines = ["datetime,warm,flat"]
    for i in range(n):
        lines.append(f"2020-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d},"
                     f"{20 + 10 * i / n + rng.normal():.5f},{100 + rng.normal():.5f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_decision_survives_the_package_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from inference.evaluation import adapter
    from inference.packages import Registry
    from inference.settings import InferenceSettings
    from inference.training_set import read_table

    csv = baseline_csv(tmp_path / "base.csv")
    md = tmp_path / "models"
    rc = edge_main(["models", "train", "--csv", str(csv), "--models-dir", str(md), "--name", "m",
                    "--target-far", "0.05", "--window-s", "10", "--hop-s", "5", "--grid-hz", "1",
                    "--levels", "auto"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "levels auto" in err and "level-free warm" in err and "flat" not in err.split("levels auto")[1]
    pkg = Registry(md).package("m", "1")
    lv = pkg.manifest["levels"]
    assert lv["mode"] == "auto" and lv["rule"] == LevelRule().as_dict()
    assert lv["signals"]["warm"]["level"] is False and lv["signals"]["flat"]["level"] is True
    assert "warm__mean" not in pkg.features and "warm__std" in pkg.features and "flat__mean" in pkg.features
    assert not any(f"warm__{s}" in pkg.features for s in LEVEL_STATS)
    # live windows: the pipeline's extractor produces every feature; the model gets exactly its own
    settings = InferenceSettings.model_validate({"window_s": 10, "hop_s": 5, "grid_hz": 1})
    ts_us, signals = read_table(csv)
    f = adapter.featurize([adapter.samples(ts_us[:200], {k: v[:200] for k, v in signals.items()}, "x")],
                          adapter.spec_of(settings), settings)
    x, missing = adapter.model_inputs(f, pkg.features)
    assert x.shape[1] == len(pkg.features) and not missing.any()
    # the default keeps every level and records no decision
    assert edge_main(["models", "train", "--csv", str(csv), "--models-dir", str(md), "--name", "d",
                      "--target-far", "0.05", "--window-s", "10", "--hop-s", "5", "--grid-hz", "1"]) == 0
    capsys.readouterr()
    d = Registry(md).package("d", "1")
    assert "levels" not in d.manifest and "warm__mean" in d.features


def test_evaluate_levels_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``edge models evaluate --levels auto`` trains each file's model with the rule and reports it."""
    import json

    rng = np.random.default_rng(2)
    n = 1500
    lines = ["datetime,warm,flat,anomaly"]
    for i in range(n):
        fault = 1200 <= i < 1300
        warm, flat = 20 + 10 * i / 600 + rng.normal(), 100 + rng.normal() + 6 * fault
        stamp = f"2020-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}"
        lines.append(f"{stamp},{warm:.5f},{flat:.5f},{int(fault)}")
    (tmp_path / "f.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "e.json"
    argv = ["models", "evaluate", str(tmp_path / "f.csv"), "--train-rows", "600", "--target-far", "0.05",
            "--window-s", "10", "--hop-s", "5", "--grid-hz", "1", "--quiet", "--json", str(out)]
    assert edge_main([*argv, "--levels", "auto"]) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert doc["files"][0]["levels"]["signals"]["warm"]["level"] is False
    assert doc["overall"]["levels"]["level_free"] == {"warm": 1, "flat": 0}
    auto_far = doc["overall"]["pointwise"]["FAR"]
    assert edge_main(argv) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert doc["overall"]["levels"] is None and doc["files"][0]["levels"] is None
    assert auto_far < doc["overall"]["pointwise"]["FAR"]  # the drifting level alarms without the rule
    assert edge_main([*argv[:3], "--model", "m", "--levels", "auto"]) == 2
    assert "--levels" in capsys.readouterr().err
