"""Spool throughput: ``Spool.append`` (fsync per batch) and replay read, next to a raw Arrow IPC stream write
of the same batches with one fsync at the end (the floor: what the disk and pyarrow allow without durability
per batch).

    .venv/bin/python bench/bench_spool.py --batches 200 --rows 10000 --reps 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from edge.core.datamodel import SAMPLES, samples_from_arrays
from edge.core.envelope import Envelope, batch_id_for
from edge.core.metrics import Metrics
from edge.core.settings import SpoolSettings
from edge.sinks.historian.spool import Spool


def make_batches(batches: int, rows: int) -> list[Envelope]:
    rng = np.random.default_rng(1)
    tags = pa.array([f"line{i % 2}/m{i % 3}/tag{i % 500}" for i in range(rows)]).dictionary_encode()
    out = []
    for b in range(batches):
        ts = np.arange(b * rows, (b + 1) * rows, dtype=np.int64) + 1_700_000_000_000_000
        out.append(Envelope("samples", samples_from_arrays(ts, tags, rng.normal(size=rows), source="bench"),
                            batch_id_for("bench", b)))
    return out


def run_spool(envs: list[Envelope], root: Path) -> tuple[float, float]:
    d = root / "spool"
    spool = Spool(SpoolSettings(dir=d, max_bytes=8 << 30), metrics=Metrics()).open()
    t0 = time.perf_counter()
    for env in envs:
        spool.append(env)
    t_append = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = 0
    while (seg := spool.oldest()) is not None:
        n += sum(e.num_rows for e in seg.read())
        spool.remove(seg)
    t_read = time.perf_counter() - t0
    assert n == sum(e.num_rows for e in envs)
    shutil.rmtree(d)
    return t_append, t_read


def run_raw(envs: list[Envelope], root: Path) -> float:
    path = root / "raw.arrow"
    t0 = time.perf_counter()
    with pa.OSFile(str(path), "wb") as fh:
        w = ipc.new_stream(fh, SAMPLES)
        for env in envs:
            w.write_batch(env.batch)
        w.close()
        fh.flush()
        os.fsync(fh.fileno())
    dt = time.perf_counter() - t0
    path.unlink()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args()
    envs = make_batches(args.batches, args.rows)
    total = args.batches * args.rows
    root = Path(tempfile.mkdtemp(dir=args.dir))
    appends, reads, raws = [], [], []
    try:
        for _ in range(args.reps):
            raws.append(run_raw(envs, root))
            a, r = run_spool(envs, root)
            appends.append(a)
            reads.append(r)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    a, r, w = statistics.median(appends), statistics.median(reads), statistics.median(raws)
    print(f"{total:,} rows in {args.batches} batches of {args.rows:,}; medians of {args.reps}")
    print(f"| spool append (fsync per batch) | {total / a / 1e6:.2f}M rows/s | {a:.3f} s "
          f"| {w / a:.2f}x of raw |")
    print(f"| raw IPC write (one fsync)      | {total / w / 1e6:.2f}M rows/s | {w:.3f} s | 1.00x |")
    print(f"| spool replay read + remove     | {total / r / 1e6:.2f}M rows/s | {r:.3f} s | |")


if __name__ == "__main__":
    main()
