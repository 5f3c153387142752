"""Inference: the pipeline's inference stage against a bare onnxruntime session on the same batches, and the
Triton round trip (gRPC and HTTP) at batch 1 and 256.

Stage figures: ``runtime path`` = what the stage does per tick to score (``model_inputs_from_matrix`` on
the feature matrix + ``Runtime.infer``), ``full scoring`` = that plus the insight rows (ids, hysteresis,
top features, context JSON; columnar, see ``inference.insights``). The bare session gets the same float32
matrix with ``session.run``. Rounds are interleaved; medians. Both sides use intra_op_num_threads=1.

    .venv/bin/python bench/bench_inference.py [--batch 256] [--rounds 200] [--kind iforest] [--no-triton]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.features import model_inputs_from_matrix
from inference.insights import SeverityTracker, build_insights
from inference.packages import write_package
from inference.runtimes.onnx_runtime import OnnxRuntime
from inference.train import TrainingSet, fit
from inference.windows import GATING_FLAGS, Window


def pct(v: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(v), q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--features", type=int, default=22)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--kind", default="iforest", choices=["pca", "iforest"])
    ap.add_argument("--no-triton", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    names = [f"s{i // 11}__f{i}" for i in range(args.features)]
    r = fit(args.kind, TrainingSet(names, rng.normal(size=(2000, args.features)), np.arange(2000)))
    rt = OnnxRuntime(r.onnx, providers=["CPUExecutionProvider"], intra_op_threads=1)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    bare = ort.InferenceSession(r.onnx, so, providers=["CPUExecutionProvider"])
    b = args.batch
    x = rng.normal(size=(b, args.features))
    windows = [
        Window(f"eq/{i}", 0, 10_000_000, [], np.zeros((0, 1)), 10, 1.0, 0, {"work_order": "WO"})
        for i in range(b)
    ]
    tracker = SeverityTracker()
    x32 = x.astype(np.float32)

    def run_bare() -> None:
        bare.run(["score", "contributions"], {"features": x32})

    def run_path() -> dict[str, np.ndarray]:
        xm, _ = model_inputs_from_matrix(names, x, names)  # what InferenceStage.process does
        return rt.infer(xm)

    assets = [w.asset for w in windows]
    contexts = [w.context for w in windows]

    def run_full() -> None:
        out = run_path()
        # what InferenceStage.process passes per model: per-tick arrays, gating of every row at once
        starts = np.fromiter((w.start_us for w in windows), dtype=np.int64, count=b)
        ends = np.fromiter((w.end_us for w in windows), dtype=np.int64, count=b)
        flags = np.zeros(b, dtype=np.int64)
        build_insights(
            model="m",
            version="1",
            sha256="0" * 64,
            threshold=r.threshold,
            feature_names=names,
            assets=assets,
            window_start_us=starts,
            window_end_us=ends,
            scores=out["score"],
            contributions=out["contributions"],
            flags=flags,
            gated=(flags & GATING_FLAGS) != 0,
            contexts=contexts,
            tracker=tracker,
        )

    t: dict[str, list[float]] = {"bare session.run": [], "stage runtime path": [], "stage full scoring": []}
    fns = {"bare session.run": run_bare, "stage runtime path": run_path, "stage full scoring": run_full}
    for fn in fns.values():
        fn()
    for _ in range(args.rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            t[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in t.items()}
    print(
        f"model {args.kind}, batch {b} windows x {args.features} features, {args.rounds} interleaved rounds, "
        "medians"
    )
    print(f"{'path':22} {'ms/batch':>9} {'windows/s':>11} {'ratio vs bare':>14}")
    for k, v in med.items():
        print(f"{k:22} {v * 1e3:9.3f} {b / v:11.0f} {med['bare session.run'] / v:14.2f}")
    if args.no_triton:
        return
    from inference.runtimes.triton_runtime import TritonRuntime, write_triton_model
    from tests.triton.harness import TritonServer

    tmp = Path(tempfile.mkdtemp())
    pkg = write_package(
        tmp / "bench",
        {
            "name": "bench",
            "version": "1",
            "features": names,
            "input": "features",
            "outputs": {"score": "score", "contributions": "contributions"},
            "threshold": r.threshold,
            "training": {},
            "metrics": {},
        },
        r.onnx,
    )
    repo = tmp / "repo"
    write_triton_model(pkg, repo)
    server = TritonServer(repo).start()
    try:
        print(
            f"\nTriton {args.kind} round trip (tritonserver 2.51, Python backend wrapping onnxruntime, "
            f"127.0.0.1), {args.rounds} calls each, interleaved"
        )
        print(f"{'protocol':9} {'batch':>6} {'p50 ms':>8} {'p99 ms':>8}")
        rts = {
            p: TritonRuntime(
                pkg,
                url=server.grpc_url if p == "grpc" else server.http_url,
                protocol=p,
                load=(p == "grpc"),
                timeout_s=10,
            )
            for p in ("grpc", "http")
        }
        for batch in (1, 256):
            xb = rng.normal(size=(batch, args.features)).astype(np.float32)
            lat: dict[str, list[float]] = {p: [] for p in rts}
            for rt_ in rts.values():
                rt_.infer(xb)
            for _ in range(args.rounds):
                for p, rt_ in rts.items():
                    t0 = time.perf_counter()
                    rt_.infer(xb)
                    lat[p].append(time.perf_counter() - t0)
            for p, v in lat.items():
                print(f"{p:9} {batch:6d} {pct(v, 0.5) * 1e3:8.2f} {pct(v, 0.99) * 1e3:8.2f}")
            t_local = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                bare.run(["score", "contributions"], {"features": xb})
                t_local.append(time.perf_counter() - t0)
            print(
                f"{'local ort':9} {batch:6d} {pct(t_local, 0.5) * 1e3:8.2f} {pct(t_local, 0.99) * 1e3:8.2f}"
            )
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
