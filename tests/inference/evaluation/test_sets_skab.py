"""SKAB through ``edge models evaluate`` with the leaderboard's protocol: all 34 files, each file's first 400
rows train, the rest is scored point-wise (confusion matrices summed over the files); PCA with the product
defaults (window 10 s, hop 5 s). The floors sit a little below the figures measured with this
configuration."""

from __future__ import annotations

from pathlib import Path

from tests.inference.evaluation.sets import data_dir, evaluate

SKAB_ARGS = ("--sep", ";", "--time-column", "datetime", "--label-column", "anomaly", "--ignore-columns",
             "changepoint", "--train-rows", "400", "--kind", "pca")
MIN_F1 = 0.74  # measured 0.760
MAX_FAR = 27.0  # measured 25.06 %
MAX_MAR = 27.5  # measured 25.42 %
MIN_EVENTS = 26  # measured 28 of 34


def test_skab_leaderboard_protocol(tmp_path: Path) -> None:
    root = data_dir("skab")
    files = [f for sub in ("valve1", "valve2", "other") for f in sorted((root / sub).glob("*.csv"))]
    assert len(files) == 34
    doc = evaluate(tmp_path, *map(str, files), *SKAB_ARGS)
    ov = doc["overall"]
    assert ov["files"] == 34
    scored = sum(f["points"] for f in doc["files"])
    assert scored == sum(f["rows"] - 400 for f in doc["files"]) == ov["points"]
    pw = ov["pointwise"]
    assert pw["F1"] >= MIN_F1 and pw["FAR"] <= MAX_FAR and pw["MAR"] <= MAX_MAR, pw
    assert ov["events"] == 34 and ov["events_detected"] >= MIN_EVENTS


# what bench/quality/select_skab.py chose on anomaly-free data (the lowest replayed false-alarm rate)
LEVEL_FREE = "std,ptp,skew,kurt,crest,slope,zcr"


def test_skab_level_free_statistics(tmp_path: Path) -> None:
    """Trained without the statistics a slow drift moves (mean, rms, min, max): few false alarms, but most
    anomalies missed (measured F1 0.32, FAR 4.22 %, MAR 80.5 %, 21 of 34 events)."""
    root = data_dir("skab")
    files = [f for sub in ("valve1", "valve2", "other") for f in sorted((root / sub).glob("*.csv"))]
    doc = evaluate(tmp_path, *map(str, files), *SKAB_ARGS, "--feature-stats", LEVEL_FREE)
    assert doc["config"]["feature_stats"] == LEVEL_FREE.split(",")
    features = doc["files"][0]["model"]["features"]
    assert features == 8 * len(LEVEL_FREE.split(","))  # 8 signals
    pw = doc["overall"]["pointwise"]
    assert pw["FAR"] <= 5.0 and pw["F1"] >= 0.29, pw
    assert doc["overall"]["events_detected"] >= 19


def test_skab_levels_auto(tmp_path: Path) -> None:
    """``--levels auto`` with the product defaults otherwise: the drifting signals' levels are dropped per
    file on its training rows alone. Fewer false alarms, more anomalies missed (measured F1 0.691, FAR
    13.58 %, MAR 41.06 %, 29 of 34 events; Temperature level-free in 19 models, Thermocouple in 20): not
    better on both F1 and FAR than the default, so ``all`` stays the default."""
    root = data_dir("skab")
    files = [f for sub in ("valve1", "valve2", "other") for f in sorted((root / sub).glob("*.csv"))]
    doc = evaluate(tmp_path, *map(str, files), *SKAB_ARGS, "--levels", "auto")
    lv = doc["overall"]["levels"]
    assert lv["mode"] == "auto" and lv["models"] == 34
    free = lv["level_free"]
    assert free["Temperature"] >= 17 and free["Thermocouple"] >= 17
    assert free["Pressure"] == 0 and free["Current"] == 0  # steady signals keep their levels
    pw = doc["overall"]["pointwise"]
    assert pw["FAR"] <= 15.0 and pw["F1"] >= 0.67 and pw["MAR"] <= 43.0, pw
    assert doc["overall"]["events_detected"] >= 27
