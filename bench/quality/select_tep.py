"""Choose the Tennessee Eastman configuration of ``edge models evaluate`` on the training files only.

    python bench/quality/select_tep.py TEP_TABLES   (the folder bench/quality/to_table.py tep wrote)

Each candidate (kind x window in rows x the training's target false-alarm rate) is run through the command itself: trained on the first 2/3 of
d00.parquet, its false-alarm rate measured on the last 1/3 (later normal running, not trained on), its
detection on the training fault files d01..d21.parquet. The chosen one detects the most training faults at
>= 50 % of their rows among those whose forward false-alarm rate is <= 5 %; a tie goes to the lower rate.
No *_te file is read.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

KINDS = ("pca", "knn")
WINDOW_ROWS = (3, 5, 10, 20)
TARGET_FARS = (0.01, 0.05)
PERIOD_S = 180.0
MAX_FAR = 5.0
FORWARD_SPLIT = 2 / 3


def _run(tables: Path, work: Path, kind: str, rows: int, target: float) -> dict[str, float]:
    import contextlib
    import io

    from edge.app.cli import main

    out = work / f"{kind}-{rows}-{target}.json"
    faults = sorted(str(p) for p in tables.glob("d[0-2][0-9].parquet") if p.stem != "d00")
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["models", "evaluate", str(work / "d00_forward.parquet"), *faults, "--label-column", "label",
                   "--period-s", str(PERIOD_S), "--train-file", str(work / "d00_fit.parquet"),
                   "--window-s", str(rows * PERIOD_S), "--hop-s", str(PERIOD_S), "--grid-hz", str(1 / PERIOD_S),
                   "--kind", kind, "--target-far", str(target), "--quiet", "--json", str(out)])
    if rc:
        raise SystemExit(f"{kind} {rows} rows, target {target}: edge models evaluate exited {rc}")
    files = json.loads(out.read_text())["files"]
    far = files[0]["pointwise"]["FAR"]
    detected = sum(1 for f in files[1:] if 100 - f["pointwise"]["MAR"] >= 50)
    return {"forward_far": far, "train_faults_detected": detected}


def split_d00(tables: Path, work: Path) -> None:
    """d00 (the normal training run) as ``work/d00_fit.parquet`` (its first part, fitted and calibrated on)
    and ``work/d00_forward.parquet`` (the rest: the forward false-alarm check)."""
    d00 = pl.read_parquet(tables / "d00.parquet")
    cut = int(d00.height * FORWARD_SPLIT)
    d00.head(cut).write_parquet(work / "d00_fit.parquet")
    d00.slice(cut).write_parquet(work / "d00_forward.parquet")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    tables = Path(argv[0])
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        split_d00(tables, work)
        for kind in KINDS:
            for w in WINDOW_ROWS:
                for target in TARGET_FARS:
                    r = {"kind": kind, "window_rows": w, "target_far": target,
                         **_run(tables, work, kind, w, target)}
                    print(json.dumps(r), flush=True)
                    rows.append(r)
    ok = [r for r in rows if r["forward_far"] <= MAX_FAR]
    if not ok:
        print("no candidate meets the forward false-alarm bound", file=sys.stderr)
        return 1
    best = max(ok, key=lambda r: (r["train_faults_detected"], -r["forward_far"]))
    print("chosen:", json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
