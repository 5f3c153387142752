"""Write CWRU (.npz) and Tennessee Eastman (.dat.gz) files as generic labelled Parquet tables, so that
``edge models evaluate`` itself stays generic.

    python bench/quality/to_table.py cwru /work/shared/data/cwru OUT_DIR [--normal-decimate N]
        -> OUT_DIR/<name>.parquet: DE, FE at 12 kHz, label 0 for Normal, else 1/2/3 = inner race / ball /
           outer race; no time column (evaluate with --rows-per-second 12000). 1797_Normal.npz is sampled at
           48 kHz: it is decimated by N (default 4, FIR, zero phase; 1 keeps it as stored) and written as
           1797_Normal_train.parquet (its first 60 %: train with --train-file) and 1797_Normal_test.parquet
           (the last 40 %: the false-alarm rate), never the same rows in both
    python bench/quality/to_table.py tep /work/shared/data/tep OUT_DIR
        -> OUT_DIR/dNN[_te].parquet: the 52 variables (d00.dat is stored transposed: fixed), label = the
           fault number from row 160 of the *_te files (0 before, and everywhere in d00*); no time column
           (evaluate with --period-s 180; train with --train-file OUT_DIR/d00.parquet)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

CWRU_CLASS = {"IR": 1, "B": 2, "OR": 3}
TEP_FAULT_ROW = 160


CWRU_NORMAL_TRAIN_SHARE = 0.6


def _cwru_table(x: np.ndarray, label: int, p: Path) -> Path:
    pl.DataFrame({"DE": x[:, 0], "FE": x[:, 1], "label": np.full(len(x), label, dtype=np.int64)}
                 ).write_parquet(p)
    return p


def cwru(src: Path, out: Path, normal_decimate: int = 4) -> list[Path]:
    from scipy.signal import decimate

    written = []
    for f in sorted(src.glob("*.npz")):
        d = np.load(f)
        x = np.column_stack([d["DE"].ravel(), d["FE"].ravel()]).astype(np.float64)
        if "Normal" not in f.stem:
            label = CWRU_CLASS[f.stem.split("_")[1].split("@")[0]]
            written.append(_cwru_table(x, label, out / f"{f.stem}.parquet"))
            continue
        if normal_decimate > 1:  # stored at 48 kHz, the fault files at 12 kHz (see REPORT.md)
            x = np.column_stack([decimate(x[:, j], normal_decimate, ftype="fir", zero_phase=True)
                                 for j in range(2)])
        cut = int(len(x) * CWRU_NORMAL_TRAIN_SHARE)
        written.append(_cwru_table(x[:cut], 0, out / f"{f.stem}_train.parquet"))
        written.append(_cwru_table(x[cut:], 0, out / f"{f.stem}_test.parquet"))
    return written


def tep(src: Path, out: Path) -> list[Path]:
    written = []
    for f in sorted(src.glob("d*.dat.gz")):
        name = f.name.removesuffix(".dat.gz")
        x = np.loadtxt(f)
        if x.shape[0] == 52 and x.shape[1] != 52:
            x = x.T
        fault = int(name[1:3])
        label = np.zeros(len(x), dtype=np.int64)
        if name.endswith("_te"):
            label[TEP_FAULT_ROW:] = fault
        elif fault:
            label[:] = fault  # the training fault files: faulty throughout
        cols = {f"x{j + 1:02d}": x[:, j] for j in range(x.shape[1])}
        p = out / f"{name}.parquet"
        pl.DataFrame({**cols, "label": label}).write_parquet(p)
        written.append(p)
    return written


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set", choices=("cwru", "tep"))
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--normal-decimate", type=int, default=4,
                    help="cwru: decimate 1797_Normal (48 kHz) by N to the fault files' 12 kHz; 1 = as stored")
    args = ap.parse_args(argv)
    if args.normal_decimate < 1:
        ap.error("--normal-decimate must be >= 1")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    files = cwru(args.src, out, args.normal_decimate) if args.set == "cwru" else tep(args.src, out)
    print(f"wrote {len(files)} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
