"""The lifecycle's cost in the inference stage: a challenger in shadow, and the per-feature drift checks.

``InferenceStage.process`` over the same closed windows (``--equipment`` equipment, one window each per tick,
two signals at 2 Hz) with: no model (features only), the champion, the champion and a challenger (a second
PCA package). Rounds are interleaved; medians. Reported: the challenger's scoring (champion+challenger tick
minus champion tick) over the champion's scoring (champion tick minus features-only tick), and the share of
the champion tick the drift monitor's ``observe`` takes (timed apart on the same tick's arrays).

    flock /tmp/fe-cpu.lock .venv/bin/python bench/bench_lifecycle.py [--equipment 256] [--rounds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.core.datamodel import CONTEXTUALIZED_SAMPLES, DICT_STR, samples_from_arrays
from inference.deploy import DeployedModel
from inference.feature_drift import drift_monitor
from inference.features import FeatureExtractor, model_inputs_from_matrix
from inference.manifest import build_manifest
from inference.models.pca.kind import KIND as PCA
from inference.models.pca.settings import PcaSettings
from inference.packages import Registry
from inference.runtimes.onnx.runtime import OnnxRuntime
from inference.settings import InferenceSettings
from inference.stage import InferenceStage
from inference.train import fit
from inference.training_set import features_from_samples
from inference.windows import Windower, WindowSpec


def samples(equipment: int, seconds: float, seed: int) -> object:
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    t = np.arange(0, seconds, 0.5)
    ts, tags, vals, assets = [], [], [], []
    for e in range(equipment):
        load = np.sin(2 * np.pi * t / 120 + e)
        a = load + 0.2 * rng.normal(size=t.size)
        b = 0.5 * load + 0.2 * rng.normal(size=t.size)
        for tag, v in (("a", a), ("b", b)):
            ts.append((t * 1e6).astype(np.int64) + 1_700_000_000_000_000)
            tags += [tag] * t.size
            vals.append(v)
            assets += [f"plant/line{e % 8}/eq{e}"] * t.size
    order = np.argsort(np.concatenate(ts), kind="stable")
    s = samples_from_arrays(np.concatenate(ts)[order], [tags[i] for i in order], np.concatenate(vals)[order],
                            source="bench")
    n = s.num_rows
    a = pa.array([assets[i] for i in order], type=pa.string()).dictionary_encode().cast(DICT_STR)
    null = pa.nulls(n, DICT_STR)
    return pa.RecordBatch.from_arrays([*s.columns, a, null, null, null, null, null, null],
                                      schema=CONTEXTUALIZED_SAMPLES)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--equipment", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fe-bench-lifecycle-"))
    settings = InferenceSettings(models_dir=tmp, providers=["CPUExecutionProvider"])
    spec = WindowSpec.from_settings(settings)
    tset = features_from_samples([samples(8, 1200, 1)], spec)
    reg = Registry(tmp)
    pkgs = []
    for seed in (0, 1):
        r = fit(PCA, tset, PcaSettings(target_far=0.05, var=0.9 - 0.05 * seed))
        pkgs.append(reg.add(build_manifest("bench", tset, r, spec, settings, ["bench"]), r.onnx, r.holdout))

    def deployed(role: str, pkg: object) -> DeployedModel:
        rt = OnnxRuntime(pkg.onnx, providers=["CPUExecutionProvider"],  # type: ignore[attr-defined]
                         intra_op_threads=1, name="bench")
        return DeployedModel(pkg, rt, role=role)

    win = Windower(spec)
    win.add(samples(args.equipment, 15, 2))
    windows = win.ready(now_us=2**62)
    windows = [w for w in windows if w.start_us == windows[0].start_us]  # one window per equipment
    stages = {
        "features only": InferenceStage(settings, asyncio.Queue(), lambda e: None, models=[]),
        "champion": InferenceStage(settings, asyncio.Queue(), lambda e: None,
                                   models=[deployed("champion", pkgs[0])]),
        "champion + challenger": InferenceStage(
            settings, asyncio.Queue(), lambda e: None,
            models=[deployed("champion", pkgs[0]), deployed("challenger", pkgs[1])]),
    }
    times: dict[str, list[float]] = {k: [] for k in stages}
    for s in stages.values():
        s.process(windows)  # compile and warm
    for _ in range(args.rounds):
        for k, s in stages.items():
            t0 = time.perf_counter()
            s.process(windows)
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    fx = FeatureExtractor(spec.grid_hz, (), 8)
    names, values, _ = fx.matrix(windows)
    x, _ = model_inputs_from_matrix(names, values, pkgs[0].features)
    scores = np.abs(np.random.default_rng(3).normal(size=len(windows)))
    gated = np.zeros(len(windows), dtype=bool)
    assets = [w.asset for w in windows]
    mon = drift_monitor(deployed("champion", pkgs[0]))
    drift_t = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        mon.observe(x, pkgs[0].features, scores, gated, assets)
        drift_t.append(time.perf_counter() - t0)
    drift_ms = statistics.median(drift_t) * 1e3
    champ = med["champion"] - med["features only"]
    chall = med["champion + challenger"] - med["champion"]
    print(f"{len(windows)} windows per tick, {len(pkgs[0].features)} features, {args.rounds} rounds "
          "(medians)")
    for k, v in med.items():
        print(f"  process, {k:22}: {v:8.2f} ms")
    print(f"  champion scoring {champ:.2f} ms, challenger scoring {chall:.2f} ms: ratio {chall / champ:.2f} "
          f"(bound 1.2); whole tick {med['champion + challenger'] / med['champion']:.2f}x")
    print(f"  drift observe (per feature, {type(mon).__name__}): {drift_ms:.3f} ms = "
          f"{drift_ms / med['champion']:.1%} of the champion tick (bound 5 %)")


if __name__ == "__main__":
    main()
