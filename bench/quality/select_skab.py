"""Choose the SKAB configuration of ``edge models evaluate`` on anomaly-free data only.

    python bench/quality/select_skab.py SKAB_DIR

SKAB's anomaly-free run is cut into chunks as long as a test file (1,150 rows) that replay the leaderboard's
protocol (first 400 rows train, the rest scored, every row normal); each candidate (kind x the window
statistics it is trained on) is run through the command on them, and its false-alarm rate there is what a
user would see on a normal file. The candidates' detection is never measured here (no anomaly label is read).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import polars as pl

CHUNK_ROWS = 1150
TRAIN_ROWS = 400
KINDS = ("pca", "knn")
# every statistic; the ones that do not follow a signal's level (a slow drift moves mean, rms, min, max)
STAT_SETS = {"all": "", "level_free": "std,ptp,skew,kurt,crest,slope,zcr"}


def main(argv: list[str]) -> int:
    from edge.app.cli import main as edge

    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    free = pl.read_csv(Path(argv[0]) / "anomaly-free/anomaly-free.csv", separator=";")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        chunks = []
        for i in range(free.height // CHUNK_ROWS):
            p = work / f"chunk{i}.csv"
            free.slice(i * CHUNK_ROWS, CHUNK_ROWS).with_columns(pl.lit(0).alias("anomaly")).write_csv(
                p, separator=";")
            chunks.append(str(p))
        for kind in KINDS:
            for name, stats in STAT_SETS.items():
                out = work / f"{kind}-{name}.json"
                extra = ["--feature-stats", stats] if stats else []
                with contextlib.redirect_stdout(io.StringIO()):
                    rc = edge(["models", "evaluate", *chunks, "--sep", ";", "--time-column", "datetime",
                               "--label-column", "anomaly", "--train-rows", str(TRAIN_ROWS), "--kind", kind,
                               *extra, "--quiet", "--json", str(out)])
                if rc:
                    raise SystemExit(f"{kind} {name}: edge models evaluate exited {rc}")
                ov = json.loads(out.read_text())["overall"]
                print(json.dumps({"kind": kind, "stats": name, "chunks": len(chunks),
                                  "replayed_far": ov["pointwise"]["FAR"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
