"""Write CWRU (.npz) and Tennessee Eastman (.dat.gz) files as generic labelled Parquet tables, so that
``edge models evaluate`` itself stays generic.

    python bench/quality/to_table.py cwru /work/shared/data/cwru OUT_DIR
        -> OUT_DIR/<name>.parquet: DE, FE at 12 kHz (1797_Normal.npz is 48 kHz: decimated by 4, FIR, zero
           phase), label 0 for Normal, else 1/2/3 = inner race / ball / outer race; no time column
           (evaluate with --rows-per-second 12000)
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


def cwru(src: Path, out: Path) -> list[Path]:
    from scipy.signal import decimate

    written = []
    for f in sorted(src.glob("*.npz")):
        d = np.load(f)
        x = np.column_stack([d["DE"].ravel(), d["FE"].ravel()]).astype(np.float64)
        if "Normal" in f.stem:  # 48 kHz, see REPORT.md
            x = np.column_stack([decimate(x[:, j], 4, ftype="fir", zero_phase=True) for j in range(2)])
            label = 0
        else:
            label = CWRU_CLASS[f.stem.split("_")[1].split("@")[0]]
        p = out / f"{f.stem}.parquet"
        pl.DataFrame({"DE": x[:, 0], "FE": x[:, 1], "label": np.full(len(x), label, dtype=np.int64)}
                     ).write_parquet(p)
        written.append(p)
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
    if len(argv) != 3 or argv[0] not in ("cwru", "tep"):
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    files = (cwru if argv[0] == "cwru" else tep)(Path(argv[1]), out)
    print(f"wrote {len(files)} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
