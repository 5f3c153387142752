"""As-of join of MES context: 10M samples against 10k context intervals.

Compares ``contextualize.mes_join.attach_context`` (numba kernel; honours interval ends and the
equipment-over-line precedence) with a plain polars ``join_asof`` of the same frames (backward, by line; it
does not honour interval ends), and polars ``join_asof`` plus the end check (what it takes to be equivalent).
Repetitions are interleaved; medians of wall and process CPU time are reported.

    .venv/bin/python bench/bench_asof_join.py [--samples 10000000] [--intervals 10000] [--reps 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from contextualize.mes_join import attach_context
from contextualize.mes_store import MesContextStore

US_DAY = 86_400_000_000


def build(n_samples: int, n_intervals: int, n_lines: int, eq_per_line: int, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    t0 = 1_780_000_000_000_000
    span = 30 * US_DAY
    lines = [f"acme/plant1/area{i // 10}/line{i}" for i in range(n_lines)]
    assets = [f"{ln}/cell1/eq{j}" for ln in lines for j in range(eq_per_line)]
    # work orders: per line, sorted random starts; ~20% end before the next one starts (a gap)
    per_line = n_intervals // n_lines
    store = MesContextStore()
    rows: dict[str, list[Any]] = {
        k: [] for k in ("scope_id", "valid_from", "valid_to", "work_order", "product", "batch")
    }
    products = [f"SKU-{k}" for k in range(12)]
    n = 0
    for li, ln in enumerate(lines):
        starts = np.sort(rng.choice(span, per_line, replace=False)) + t0
        for k, s in enumerate(starts):
            nxt = int(starts[k + 1]) if k + 1 < len(starts) else t0 + span + 1
            end = int(s) + int((nxt - int(s)) * 0.7) if rng.random() < 0.2 else None
            wo, prod, bat = f"WO-{n}", products[int(rng.integers(len(products)))], f"B-{n}"
            store.set_value(ln, "work_order", int(s), wo, f"e{n}")
            store.set_value(ln, "product", int(s), prod, f"e{n}")
            store.set_value(ln, "batch", int(s), bat, f"e{n}")
            if end is not None:
                for key in ("work_order", "product", "batch"):
                    store.set_value(ln, key, end, None, f"c{n}")
            rows["scope_id"].append(li)
            rows["valid_from"].append(int(s))
            rows["valid_to"].append(end if end is not None else nxt)
            rows["work_order"].append(wo)
            rows["product"].append(prod)
            rows["batch"].append(bat)
            n += 1
    ts = np.sort(rng.integers(t0 - US_DAY, t0 + span, n_samples))
    asset_idx = rng.integers(0, len(assets), n_samples).astype(np.int32)
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            pa.DictionaryArray.from_arrays(pa.array(asset_idx), pa.array(assets)),
        ],
        names=["ts", "asset"],
    )
    left = pl.DataFrame({"ts": ts, "scope_id": (asset_idx // eq_per_line).astype(np.uint32)})
    right = pl.DataFrame(
        {
            "scope_id": np.asarray(rows["scope_id"], np.uint32),
            "valid_from": np.asarray(rows["valid_from"]),
            "valid_to": np.asarray(rows["valid_to"]),
            "work_order": pl.Series(rows["work_order"], dtype=pl.Categorical),
            "product": pl.Series(rows["product"], dtype=pl.Categorical),
            "batch": pl.Series(rows["batch"], dtype=pl.Categorical),
        }
    ).sort("valid_from")
    return {"store": store, "batch": batch, "left": left, "right": right, "n_intervals": n}


def run_ours(d: dict[str, Any]) -> Any:
    return attach_context(d["batch"], d["store"], keys=("work_order", "product", "batch"))


def run_polars(d: dict[str, Any]) -> Any:
    return d["left"].join_asof(
        d["right"],
        left_on="ts",
        right_on="valid_from",
        by="scope_id",
        strategy="backward",
        check_sortedness=False,
    )


def run_polars_ends(d: dict[str, Any]) -> Any:
    j = run_polars(d)
    live = pl.col("ts") < pl.col("valid_to")
    return j.with_columns(
        [pl.when(live).then(pl.col(c)).otherwise(None).alias(c) for c in ("work_order", "product", "batch")]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10_000_000)
    ap.add_argument("--intervals", type=int, default=10_000)
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--eq-per-line", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    t = time.perf_counter()
    d = build(args.samples, args.intervals, args.lines, args.eq_per_line)
    print(
        f"built {args.samples:,} samples, {d['n_intervals']:,} work-order intervals on {args.lines} lines "
        f"x {args.eq_per_line} equipment in {time.perf_counter() - t:.1f}s (polars {pl.__version__}, "
        f"threads {pl.thread_pool_size()})"
    )
    d["store"].snapshot()  # built once per store version, not per batch

    # same answers (work order column) before timing
    pick = np.arange(0, args.samples, max(1, args.samples // 200_000))
    for key in ("work_order", "product", "batch"):
        ours = run_ours(d).column(key).take(pa.array(pick)).to_pylist()
        theirs = run_polars_ends(d)[key].gather(pick).cast(pl.String).to_list()
        assert ours == theirs, f"the joins disagree on {key}"

    cases: dict[str, Callable[[dict[str, Any]], Any]] = {
        "attach_context (ours, ends honoured)": run_ours,
        "polars join_asof (plain)": run_polars,
        "polars join_asof + end check": run_polars_ends,
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.reps):
        for name, fn in cases.items():  # interleaved
            gc.collect()
            c = time.process_time()
            t = time.perf_counter()
            out = fn(d)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            del out
    base = statistics.median(times["polars join_asof (plain)"])
    cbase = statistics.median(cpu["polars join_asof (plain)"])
    print(
        f"{'case':38s} {'wall s':>7s} {'rows/s':>12s} {'vs polars':>9s} {'cpu s':>7s} {'vs polars':>9s}"
        "  wall of each run (s)"
    )
    for name, ts_ in times.items():
        med, cmed = statistics.median(ts_), statistics.median(cpu[name])
        print(
            f"{name:38s} {med:7.3f} {args.samples / med:12,.0f} {base / med:8.2f}x {cmed:7.3f} "
            f"{cbase / cmed:8.2f}x  " + " ".join(f"{x:.3f}" for x in ts_)
        )
    print("(x > 1: faster than plain polars join_asof; wall = elapsed, cpu = process CPU time, all threads)")


if __name__ == "__main__":
    main()
