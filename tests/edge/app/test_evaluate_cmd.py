"""``edge models evaluate`` end to end through the CLI on real SKAB files: the figures agree with each other
and with a direct computation from the replayed alarm windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

SKAB = Path("/work/shared/data/skab")
FILES = [SKAB / "valve1/0.csv", SKAB / "other/7.csv"]
needs_skab = pytest.mark.skipif(not SKAB.is_dir(), reason=f"SKAB data not found at {SKAB}")


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    from edge.app.cli import main

    return main(["models", "evaluate", *argv])


@needs_skab
def test_skab_train_per_file_figures_are_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out, svg = tmp_path / "eval.json", tmp_path / "eval.svg"
    rc = _run(monkeypatch, *map(str, FILES), "--train-rows", "400", "--window-s", "10", "--hop-s", "2",
              "--grid-hz", "1", "--json", str(out), "--plot", str(svg), "--dir", str(tmp_path / "none"))
    assert rc == 2  # a config folder that does not exist is a usage error
    rc = _run(monkeypatch, *map(str, FILES), "--train-rows", "400", "--window-s", "10", "--hop-s", "2",
              "--grid-hz", "1", "--json", str(out), "--plot", str(svg))
    assert rc == 0
    table = capsys.readouterr().out
    assert "valve1/0.csv" in table and "ALL (2 files)" in table
    doc = json.loads(out.read_text())
    assert svg.read_text().startswith("<svg") and "polyline" in svg.read_text()
    total = {"TP": 0, "TN": 0, "FP": 0, "FN": 0}
    for f, path in zip(doc["files"], FILES, strict=True):
        df = pl.read_csv(path, separator=";", try_parse_dates=True)
        ts = df["datetime"].cast(pl.Datetime("us")).cast(pl.Int64).to_numpy()
        y = df["anomaly"].to_numpy() != 0
        s = f["series"]
        alarm = np.array(s["level"]) == 2
        flags = np.zeros(len(ts), dtype=bool)
        starts, ends = np.array(s["window_start_us"])[alarm], np.array(s["window_end_us"])[alarm]
        for a, b in zip(starts, ends, strict=True):
            flags |= (ts >= a) & (ts < b)
        yt, pt = y[400:], flags[400:]
        direct = {"TP": int((yt & pt).sum()), "TN": int((~yt & ~pt).sum()), "FP": int((~yt & pt).sum()),
                  "FN": int((yt & ~pt).sum())}
        assert f["confusion"] == direct
        assert f["points"] == len(ts) - 400 == sum(direct.values())
        pw = f["pointwise"]
        assert pw["F1"] == pytest.approx(direct["TP"] / (direct["TP"] + (direct["FN"] + direct["FP"]) / 2))
        assert pw["FAR"] == pytest.approx(100 * direct["FP"] / (direct["FP"] + direct["TN"]))
        assert pw["MAR"] == pytest.approx(100 * direct["FN"] / (direct["FN"] + direct["TP"]))
        # events: SKAB files hold one anomaly span; detected iff a flagged point lies in it
        ev = f["events"]
        assert ev["events"] == 1 and ev["detected"] == int(bool((yt & pt).any()))
        assert f["per_label"]["1"]["flagged"] == direct["TP"]
        assert f["alarm_windows"] == int(alarm.sum()) and f["windows"] == len(s["level"])
        for k in total:
            total[k] += direct[k]
    ov = doc["overall"]["pointwise"]
    assert {k: ov[k] for k in total} == total
    assert ov["F1"] == pytest.approx(total["TP"] / (total["TP"] + (total["FN"] + total["FP"]) / 2))
    nab_raw = sum(f["nab"]["standard"]["score"] for f in doc["files"])
    assert doc["overall"]["nab"]["standard"]["raw"] == pytest.approx(nab_raw)


@needs_skab
def test_registry_model_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    normal = tmp_path / "normal.csv"
    df = pl.read_csv(SKAB / "anomaly-free/anomaly-free.csv", separator=";")
    df.write_csv(normal, separator=";")  # the whole run: enough windows for the calibration
    reg = tmp_path / "models"
    from edge.app.cli import main

    train = ["models", "train", "--csv", str(normal), "--name", "skab", "--models-dir", str(reg)]
    assert main(train) == 0
    assert main(["models", "promote", "skab", "1", "--force", "--models-dir", str(reg)]) == 0
    capsys.readouterr()
    assert _run(monkeypatch, str(FILES[0]), "--model", "skab", "--models-dir", str(reg), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    f = doc["files"][0]
    assert f["model"]["name"] == "skab" and f["model"]["version"] == "1" and f["train_rows"] == 0
    assert f["points"] == f["rows"]
    # usage errors: exit 2 with the file and what to do
    assert _run(monkeypatch, str(FILES[0]), "--model", "nope", "--models-dir", str(reg)) in (1, 2)
    assert _run(monkeypatch, str(FILES[0]), "--train-rows", "400", "--label-column", "fault") == 2
    err = capsys.readouterr().err
    assert "no label column 'fault'" in err and "valve1/0.csv" in err
    assert _run(monkeypatch, str(tmp_path / "*.parquet"), "--train-rows", "400") == 2
    assert "no file matches" in capsys.readouterr().err
