"""``edge models train`` file options: scope, window, column names, row range, label columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.app.cli import main as edge_main
from inference.packages import Registry


def baseline_csv(path: Path, n: int = 4000) -> Path:
    rng = np.random.default_rng(0)
    lines = ["datetime,A,B,anomaly,changepoint"]
    for i in range(n):
        lines.append(f"2020-01-01T00:{i // 60:02d}:{i % 60:02d},{rng.normal():.5f},{rng.normal():.5f},"
                     f"{int(i % 97 == 0)},0")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_file_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = baseline_csv(tmp_path / "base.csv", 3600)
    md = str(tmp_path / "models")
    common = ["models", "train", "--csv", str(csv), "--models-dir", md, "--target-far", "0.05"]
    rc = edge_main([*common, "--name", "m", "--asset", "eq/X", "--column-map", "A=pressure,B=current",
                    "--rows", "0:3000", "--label-columns", "anomaly,changepoint",
                    "--window-s", "20", "--hop-s", "10", "--grid-hz", "1"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    pkg = Registry(Path(md)).package("m", "1")
    w = pkg.manifest["window"]
    assert (w["window_s"], w["hop_s"], w["grid_hz"]) == (20.0, 10.0, 1.0)
    assert sorted({f.split("__")[0] for f in pkg.features}) == ["current", "pressure"]
    assert pkg.manifest["assets"] == ["eq/X"]
    assert pkg.manifest["training"]["sources"][0].endswith("rows 0:3000")
    assert 290 <= pkg.manifest["training"]["windows"] <= 300  # 3000 rows of 1 s in 20 s windows every 10 s
    assert "false alarms after hysteresis" in out.out and "%" in out.out
    # label columns are not dropped by name any more: only when named
    assert edge_main([*common, "--name", "n", "--ignore-columns", "changepoint",
                      "--window-s", "20", "--hop-s", "10", "--grid-hz", "1"]) == 0
    capsys.readouterr()
    n = Registry(Path(md)).package("n", "1")
    assert "anomaly__mean" in n.features and not any(f.startswith("changepoint") for f in n.features)
    assert n.manifest["assets"] == []
    for bad in (["--column-map", "A"], ["--rows", "12"], ["--ignore-columns", "nope"],
                ["--window-s", "5", "--hop-s", "10"]):
        assert edge_main([*common, "--name", "bad", *bad]) == 2, bad
    assert "error:" in capsys.readouterr().err
