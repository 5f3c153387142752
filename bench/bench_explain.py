"""Cost of explaining raised insight rows (inference.explain) beside the cost of building the rows
(inference.insights.build_insights), on one tick of N windows x F features.

    flock /tmp/fe-cpu.lock .venv/bin/python bench/bench_explain.py [--windows 1000] [--features 16]

Prints the median of a few repeats for: build_insights (the reference), explaining when ``raised`` of the
rows are warnings or alarms (1 % and 100 %), and the ratio of each to the reference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from inference.explain.features import explain_batch
from inference.insights import build_insights, warm_up
from inference.severity import SeverityTracker


def median_s(fn: Callable[[], object], repeats: int = 7) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--features", type=int, default=16)
    a = ap.parse_args()
    n, f = a.windows, a.features
    rng = np.random.default_rng(0)
    names = [f"s{j // 4}__{('mean', 'std', 'ptp', 'slope')[j % 4]}" for j in range(f)]
    stats = {nm: {"mean": 0.0, "sd": 1.0, "unit": "degC"} for nm in names}
    x = rng.normal(size=(n, f))
    contrib = np.abs(rng.normal(size=(n, f)))
    assets = [f"acme/p/a/line{i % 10}/m{i}" for i in range(n)]
    starts = np.arange(n, dtype=np.int64) * 1_000_000
    warm_up()

    def build(alarm_share: float) -> object:
        scores = np.where(rng.random(n) < alarm_share, 5.0, 0.1)
        return build_insights(model="m", version="1", sha256="", threshold=1.0, feature_names=names,
                              assets=assets, window_start_us=starts, window_end_us=starts + 10_000_000,
                              scores=scores, contributions=contrib, flags=np.zeros(n, dtype=np.int64),
                              gated=np.zeros(n, dtype=np.bool_), contexts=[{}] * n,
                              tracker=SeverityTracker(hysteresis_windows=1), k=3)

    ref = median_s(lambda: build(0.01))
    print(f"build_insights, {n} windows x {f} features: {ref * 1e3:.2f} ms (reference)")
    for share in (0.01, 1.0):
        batch = build(share)
        t = median_s(lambda b=batch: explain_batch(b, names, x, contrib, stats, 3))
        print(f"explain_batch, {share:.0%} raised: {t * 1e3:.2f} ms = {t / ref:.2f} x the reference")


if __name__ == "__main__":
    main()
