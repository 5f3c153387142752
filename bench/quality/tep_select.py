"""Choose the Tennessee Eastman configuration of ``edge models evaluate`` on the training files only (a wider
grid than ``select_tep.py``: which window statistics, longer windows, the gate's STUCK rule).

    python bench/quality/tep_select.py TEP_TABLES OUT.json [KIND,...]   (TEP_TABLES: what to_table.py tep wrote)

Each candidate (kind x window rows x statistics x target false-alarm rate x STUCK rule) runs through the
command itself: trained on the first 2/3 of d00.parquet, its false-alarm rate measured on the last 1/3 (later
normal running, not trained on), its detection on the training fault files d01..d21.parquet (every row
faulty). A candidate must pass the product's training-size rule for the final model (all of d00, the
command's 20 % hold-out kept out of the fit; for the per-feature shewhart kind only the rule's held-out part)
and have a forward false-alarm rate <= 5 %; among those the one detecting the most training faults at
>= 50 % of their rows wins, then the shorter window, the higher mean detection rate, the lower forward rate. No *_te file is read.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from select_tep import split_d00

KINDS = ("pca", "knn", "shewhart")
PER_FEATURE_KINDS = ("shewhart",)  # two numbers a feature, no covariance: the rule's fit part does not apply
WINDOW_ROWS = (5, 10, 20)
STATS = ("mean", "std", "ptp", "max", "min", "mean,std", "")  # "": every statistic (the command's default)
TARGET_FARS = (0.02, 0.05)
STUCK = (None, 0)  # None: the config's STUCK rule (50 equal values); 0: off
PERIOD_S = 180.0
MAX_FAR = 5.0
N_SIGNALS = 52
N_ALL_STATS = 11
D00_ROWS = 500
HOLDOUT = 0.2


def size_ok(kind: str, rows: int, stats: str, target: float) -> bool:
    """The product's rule (inference.cross_calibration) for the final model trained on all of d00. For a
    per-feature kind only its held-out part counts (~10 alarm windows at the target rate)."""
    from inference.cross_calibration import min_training_windows

    n_feat = 1 if kind in PER_FEATURE_KINDS else N_SIGNALS * (len(stats.split(",")) if stats else N_ALL_STATS)
    n_fit = round((D00_ROWS - rows + 1) * (1 - HOLDOUT))
    return n_fit >= min_training_windows(target, n_feat)


def _run(tables: Path, work: Path, kind: str, rows: int, stats: str, target: float,
         stuck: int | None) -> dict[str, Any]:
    from edge.app.cli import main

    out = work / "run.json"
    faults = sorted(str(p) for p in tables.glob("d[0-2][0-9].parquet") if p.stem != "d00")
    argv = ["models", "evaluate", str(work / "d00_forward.parquet"), *faults, "--label-column", "label",
            "--period-s", str(PERIOD_S), "--train-file", str(work / "d00_fit.parquet"),
            "--window-s", str(rows * PERIOD_S), "--hop-s", str(PERIOD_S), "--grid-hz", str(1 / PERIOD_S),
            "--kind", kind, "--target-far", str(target), "--quiet", "--json", str(out)]
    if stats:
        argv += ["--feature-stats", stats]
    if stuck is not None:
        argv += ["--stuck-samples", str(stuck)]
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    if rc:
        raise SystemExit(f"{argv}: edge models evaluate exited {rc}")
    files = json.loads(out.read_text())["files"]
    rates = [100 - f["pointwise"]["MAR"] for f in files[1:]]
    return {"forward_far": files[0]["pointwise"]["FAR"],
            "train_faults_detected": sum(1 for r in rates if r >= 50),
            "train_mean_dr": sum(rates) / len(rates), "train_missed": [i + 1 for i, r in enumerate(rates) if r < 50]}


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    tables, dest = Path(argv[0]), Path(argv[1])
    kinds = argv[2].split(",") if len(argv) == 3 else KINDS
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        split_d00(tables, work)
        for kind, w, stats, target, stuck in itertools.product(KINDS, WINDOW_ROWS, STATS, TARGET_FARS, STUCK):
            if kind not in kinds or not size_ok(kind, w, stats, target):
                continue
            r = {"kind": kind, "window_rows": w, "stats": stats or "all", "target_far": target,
                 "stuck_samples": stuck, **_run(tables, work, kind, w, stats, target, stuck)}
            print(json.dumps(r), flush=True)
            rows.append(r)
    ok = [r for r in rows if r["forward_far"] <= MAX_FAR]
    # a tie goes to the shorter window (an alarm window covers the rows before a fault's onset, and the
    # delay grows with the window), then the higher mean detection rate, then the lower forward rate
    best = max(ok, key=lambda r: (r["train_faults_detected"], -r["window_rows"], r["train_mean_dr"],
                                  -r["forward_far"])) if ok else None
    dest.write_text(json.dumps({"candidates": rows, "chosen": best}, indent=1) + "\n")
    print("chosen:", json.dumps(best))
    return 0 if best else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
