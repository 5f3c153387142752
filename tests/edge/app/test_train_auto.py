"""``edge models train --auto`` end to end through the CLI on real SKAB files: the choice and its
cross-validated figures come from the training rows only, land in the package's manifest, and the package
trains and evaluates; a training part too small for every candidate is a clear usage error."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

SKAB = Path("/work/shared/data/skab")
FREE = SKAB / "anomaly-free/anomaly-free.csv"
VALVE = SKAB / "valve1/0.csv"
needs_skab = pytest.mark.skipif(not SKAB.is_dir(), reason=f"SKAB data not found at {SKAB}")
TRAIN_ROWS = 2500
GRID = ("--auto-kinds", "pca,knn", "--auto-windows", "10:2", "--auto-stats", "all,level_free")


def _edge(*argv: str) -> int:
    from edge.app.cli import main

    return main(list(argv))


def _file(path: Path, tail_scale: float) -> Path:
    """Normal running (the training part), then a SKAB valve file's rows after it in time, its signals
    scaled by ``tail_scale``: two files that differ only after the training part."""
    head = pl.read_csv(FREE, separator=";", try_parse_dates=True).head(TRAIN_ROWS).with_columns(
        pl.lit(0).alias("anomaly"), pl.lit(0).alias("changepoint"))
    tail = pl.read_csv(VALVE, separator=";", try_parse_dates=True)
    shift = head["datetime"].max() - tail["datetime"].min() + pl.duration(seconds=1)  # type: ignore[operator]
    signals = [c for c in tail.columns if c not in ("datetime", "anomaly", "changepoint")]
    tail = tail.with_columns(pl.col("datetime") + shift, *(pl.col(c) * tail_scale for c in signals))
    df = pl.concat([head.select(tail.columns), tail.cast(head.select(tail.columns).schema)])
    df.write_csv(path, separator=";")
    return path


def _train(tmp_path: Path, csv: Path, name: str, *extra: str) -> int:
    return _edge("models", "train", "--csv", str(csv), "--name", name, "--models-dir", str(tmp_path / "reg"),
                 "--label-columns", "anomaly,changepoint", "--auto", *extra)


def _manifest(tmp_path: Path, name: str) -> dict:  # type: ignore[type-arg]
    doc: dict = json.loads((tmp_path / "reg" / name / "1" / "manifest.json").read_text())  # type: ignore[type-arg]
    return doc


@needs_skab
def test_auto_chooses_on_training_rows_only_and_the_package_evaluates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _file(tmp_path / "a.csv", 1.0), _file(tmp_path / "b.csv", 10.0)
    rows = f"0:{TRAIN_ROWS}"
    assert _train(tmp_path, a, "auto-a", "--rows", rows, *GRID) == 0
    table_a = capsys.readouterr().out
    assert _train(tmp_path, b, "auto-b", "--rows", rows, *GRID) == 0
    table_b = capsys.readouterr().out
    ma, mb = _manifest(tmp_path, "auto-a"), _manifest(tmp_path, "auto-b")
    sa, sb = ma["auto_select"], mb["auto_select"]
    # what follows the training part (here: a faulty valve, scaled tenfold in b) changes nothing
    assert sa["candidates"] == sb["candidates"] and sa["chosen"] == sb["chosen"]
    assert table_a.split("registered")[0] == table_b.split("registered")[0]
    assert sa["training_rows"] == TRAIN_ROWS and sa["objective"] == "unlabelled"
    cands = sa["candidates"]
    assert len(cands) == 4 and all(c["feasible"] for c in cands)
    assert "chosen:" in table_a and table_a.count("\n* ") == 1
    # the chosen candidate is the rule's: most synthetic faults flagged among FAR <= max_far
    within = [c for c in cands if c["far"] <= sa["max_far"]]
    best = (max(within, key=lambda c: (c["detection"], -c["far"])) if within
            else min(cands, key=lambda c: c["far"]))
    assert sa["chosen_cv"] == best
    for c in cands:  # time-ordered folds: each fits on the rows before the ones it scores
        assert [f["rows"][0] for f in c["folds"]] == [f["fit_rows"] for f in c["folds"]]
        assert c["folds"][-1]["rows"][1] == TRAIN_ROWS
    # the package is what was chosen: kind, window, hop and statistics
    assert ma["kind"] == sa["chosen"]["kind"] == best["kind"]
    assert ma["window"]["window_s"] == best["window_s"] and ma["window"]["hop_s"] == best["hop_s"]
    stats = {f.rpartition("__")[2] for f in ma["features"]}
    assert ("mean" in stats) == (best["stats"] == "all")
    # and it evaluates on a labelled file through the registry
    out = tmp_path / "eval.json"
    reg = str(tmp_path / "reg")
    assert _edge("models", "evaluate", str(VALVE), "--model", "auto-a@1", "--models-dir", reg, "--quiet",
                 "--json", str(out)) == 0
    ev = json.loads(out.read_text())
    assert ev["files"][0]["model"]["kind"] == best["kind"] and ev["overall"]["points"] > 1000
    # the training part itself does decide: as many rows, 100 later, give other figures
    one = next(c for c in cands if c["kind"] == "pca" and c["stats"] == "level_free")
    assert _train(tmp_path, a, "auto-c", "--rows", f"100:{TRAIN_ROWS + 100}", "--auto-kinds", "pca",
                  "--auto-windows", "10:2", "--auto-stats", "level_free") == 0
    (other,) = _manifest(tmp_path, "auto-c")["auto_select"]["candidates"]
    assert other["folds"] != one["folds"]


@needs_skab
def test_auto_too_small_training_part_is_a_usage_error(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path, VALVE, "small", "--rows", "0:400", *GRID) == 2
    err = capsys.readouterr().err
    assert "training part too small for every --auto candidate" in err and "need >=" in err
    assert not (tmp_path / "reg" / "small").exists()


@needs_skab
def test_auto_with_training_labels_maximises_f1(tmp_path: Path) -> None:
    assert _train(tmp_path, VALVE, "lab", "--auto-label-column", "anomaly", "--target-far", "0.05",
                  "--auto-kinds", "pca,knn", "--auto-windows", "5:1", "--auto-stats", "level_free") == 0
    sel = _manifest(tmp_path, "lab")["auto_select"]
    assert sel["objective"] == "labelled"
    ok = [c for c in sel["candidates"] if c["feasible"]]
    assert ok and all(c["f1"] is not None and 0 <= c["f1"] <= 1 for c in ok)
    assert sel["chosen_cv"] == max(ok, key=lambda c: (c["f1"], -c["far"]))


def test_auto_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("ts,a\n0,1\n1,2\n")
    assert _train(tmp_path, csv, "x", "--window-s", "5") == 2
    assert "--auto chooses window and hop" in capsys.readouterr().err
    assert _train(tmp_path, csv, "x", "--auto-kinds", "nope") == 2
    assert "nope" in capsys.readouterr().err
    assert _train(tmp_path, csv, "x", "--auto-windows", "5:9") == 2
    assert "1 <= hop <= window" in capsys.readouterr().err
