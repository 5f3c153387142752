"""Inference: the pipeline's inference stage against a bare onnxruntime session on the same batches, and the
Triton round trip (gRPC and HTTP) at batch 1 and 256.

Stage figures: ``runtime path`` = what the stage does per tick to score (``model_inputs_from_matrix`` on
the feature matrix + ``Runtime.infer``), ``full scoring`` = that plus the insight rows (ids, hysteresis,
top features, context JSON; columnar, see ``inference.insights``). The bare session gets the same float32
matrix with ``session.run``. Rounds are interleaved; medians. Both sides use intra_op_num_threads=1.

``--fresh-context`` hands ``build_insights`` other context dicts with other values every tick (as if every
equipment's MES context changed every tick, so the context column is rebuilt each time: the worst case).
``--breakdown`` also times the parts of the insight rows. ``--windower`` instead measures ``Windower.add``
(one second of samples of ``--equipment`` x ``--tags`` at ``--hz``) and ``Windower.ready`` closing one window
per equipment, at the demo config (window 10 s, hop 5 s, grid 2 Hz; ``--grid-hz`` to change): the work the
stage runs in a worker thread.

    .venv/bin/python bench/bench_inference.py [--batch 256] [--rounds 200] [--kind iforest] [--no-triton]
    .venv/bin/python bench/bench_inference.py --windower [--equipment 256] [--tags 4] [--hz 10]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.app.plugins import MODEL_KINDS, model_kind
from edge.core.plugins import names as plugin_names
from inference.features import model_inputs_from_matrix
from inference.insights import build_insights
from inference.packages import write_package
from inference.runtimes.onnx.runtime import OnnxRuntime
from inference.severity import SeverityTracker
from inference.stage import window_columns
from inference.train import fit
from inference.training_set import TrainingSet
from inference.windows import GATING_FLAGS, Window, Windower, WindowSpec


def pct(v: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(v), q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--features", type=int, default=22)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--kind", default="iforest", choices=plugin_names(MODEL_KINDS))
    ap.add_argument("--no-triton", action="store_true")
    ap.add_argument("--fresh-context", action="store_true", help="new context dicts every tick")
    ap.add_argument("--breakdown", action="store_true", help="also time the parts of the insight rows")
    ap.add_argument("--windower", action="store_true", help="measure Windower.add / ready instead")
    ap.add_argument("--equipment", type=int, default=256)
    ap.add_argument("--tags", type=int, default=4)
    ap.add_argument("--hz", type=float, default=10.0, help="sample rate per tag (--windower)")
    ap.add_argument("--grid-hz", type=float, default=2.0)
    args = ap.parse_args()
    if args.windower:
        bench_windower(args)
        return
    rng = np.random.default_rng(0)
    names = [f"s{i // 11}__f{i}" for i in range(args.features)]
    training = TrainingSet(names, rng.normal(size=(2000, args.features)), np.arange(2000))
    r = fit(model_kind(args.kind), training)
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

    other_contexts: list[list[dict[str, str | None]]] = [
        [{"work_order": f"WO-{i}-{t}"} for i in range(b)] for t in range(2)
    ]
    ticks = [0]

    def run_full() -> None:
        out = run_path()
        # what InferenceStage.process passes per model: per-tick columns, gating of every row at once
        assets, starts, ends, contexts = window_columns(windows)
        if args.fresh_context:
            contexts = other_contexts[ticks[0] % 2]
            ticks[0] += 1
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
    if args.breakdown:
        breakdown(args, windows, names, run_path(), r.threshold)
    if args.no_triton:
        return
    from inference.runtimes.triton.runtime import TritonRuntime, write_triton_model
    from tests.fixtures.triton.harness import TritonServer

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
            for p, lv in lat.items():
                print(f"{p:9} {batch:6d} {pct(lv, 0.5) * 1e3:8.2f} {pct(lv, 0.99) * 1e3:8.2f}")
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


def _best_us(fn: Callable[[], object], rounds: int) -> float:
    fn()
    t = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return statistics.median(t) * 1e6


def breakdown(
    args: argparse.Namespace, windows: list[Window], names: list[str], out: dict[str, np.ndarray], thr: float
) -> None:
    """Medians of the parts of the insight rows (each on its own, so they do not add up exactly)."""
    import pyarrow as pa

    from inference import insights as ins
    from inference.idhash import id_prefix, insight_id_column

    b = len(windows)
    assets, starts, ends, contexts = window_columns(windows)
    scores = np.asarray(out["score"], dtype=np.float64).reshape(-1)
    contrib = np.ascontiguousarray(out["contributions"])
    tracker = ins.SeverityTracker()
    kw = dict(model="m", version="1", sha256="0" * 64, threshold=thr, feature_names=names, assets=assets,
              window_start_us=starts, window_end_us=ends, scores=scores, contributions=contrib,
              flags=np.zeros(b, dtype=np.int64), gated=np.zeros(b, dtype=np.bool_), contexts=contexts)
    ins.build_insights(tracker=tracker, **kw)  # type: ignore[arg-type]
    rows = tracker.rows_cache["m"]
    frag_buf, frag_off = ins._feature_fragments(names)
    pre = id_prefix("m", "1")
    gate = np.zeros(b, dtype=np.bool_)

    def kernel(k: int) -> Callable[[], object]:
        return lambda: ins._rows_kernel(
            rows.slots, scores, gate, thr, 0.8, 0.9, 2, tracker._state, pre, rows.name_buf, rows.name_off,
            rows.idx, starts, ends, contrib, k, frag_buf, frag_off,
        )

    asset_dict = pa.array(assets).dictionary_encode()
    other: list[list[dict[str, str | None]]] = [
        [{"work_order": f"WO-{i}-{t}"} for i in range(b)] for t in range(2)
    ]
    flip = itertools.cycle((0, 1))
    parts: dict[str, Callable[[], object]] = {
        "window_columns (stage, per tick)": lambda: window_columns(windows),
        "build_insights": lambda: ins.build_insights(tracker=tracker, **kw),  # type: ignore[arg-type]
        "build_insights, contexts changed": lambda: ins.build_insights(
            tracker=tracker, **{**kw, "contexts": other[next(flip)]}  # type: ignore[arg-type]
        ),
        "row kernel (all per-row work)": kernel(3),
        "row kernel without top features": kernel(0),
        "row kernel, 0 rows (fixed cost)": lambda: ins._rows_kernel(
            rows.slots[:0], scores[:0], gate[:0], thr, 0.8, 0.9, 2, tracker._state, pre, rows.name_buf,
            rows.name_off, rows.idx[:0], starts[:0], ends[:0], contrib[:0], 3, frag_buf, frag_off,
        ),
        "ids alone (insight_id_column)": lambda: insight_id_column("m", "1", asset_dict, starts, ends),
        "context column, rebuilt": lambda: ins._context_column(other[next(flip)], b, {}),
    }
    print(f"\nparts of the insight rows, batch {b}, medians of {args.rounds} (µs)")
    for name, fn in parts.items():
        print(f"{name:36} {_best_us(fn, args.rounds):9.1f}")


def bench_windower(args: argparse.Namespace) -> None:
    """``Windower.add`` of one second of samples at a time, then ``ready`` closing one window per
    equipment; medians over rounds, each round a fresh windower fed 13 s."""
    import pyarrow as pa

    from edge.core.datamodel import CONTEXTUALIZED_SAMPLES, DICT_STR, TS

    spec = WindowSpec(window_s=10.0, hop_s=5.0, grid_hz=args.grid_hz)
    e, tg, hz = args.equipment, args.tags, args.hz
    per_s = int(hz)
    t0 = 1_700_000_040_000_000
    rng = np.random.default_rng(0)
    tags = pa.array([f"t{j}" for j in range(tg)]).dictionary_encode().cast(DICT_STR)
    eqs = pa.array([f"site/line/eq{i}" for i in range(e)]).dictionary_encode().cast(DICT_STR)
    n = per_s * e * tg
    batches = []
    for sec in range(13):
        ts = t0 + sec * 1_000_000 + np.repeat((np.arange(per_s) * 1e6 / hz).astype(np.int64), e * tg)
        tsa = pa.array(ts).cast(TS)
        null = pa.nulls(n, DICT_STR)
        batches.append(pa.RecordBatch.from_arrays(
            [tsa, tsa, tags.take(np.tile(np.arange(tg), per_s * e)), pa.array(rng.normal(size=n)),
             pa.array(np.zeros(n, np.int16)), pa.array(np.zeros(n, np.int32)),
             pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), ["src"]),
             eqs.take(np.tile(np.repeat(np.arange(e), tg), per_s)), null, null,
             pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), ["WO-1"]), null, null, null],
            schema=CONTEXTUALIZED_SAMPLES,
        ))
    adds, readies, nwin = [], [], 0
    for _ in range(max(1, args.rounds)):
        w = Windower(spec)
        for batch in batches:
            a0 = time.perf_counter()
            w.add(batch)
            adds.append(time.perf_counter() - a0)
        r0 = time.perf_counter()
        nwin = len(w.ready())
        readies.append(time.perf_counter() - r0)
    print(f"windower: {e} equipment x {tg} tags at {hz:g} Hz ({n} samples per 1 s batch), window 10 s, "
          f"hop 5 s, grid {args.grid_hz:g} Hz, {args.rounds} rounds, medians")
    print(f"add (1 s of samples)     {statistics.median(adds) * 1e3:9.2f} ms")
    print(f"ready ({nwin} windows)  {statistics.median(readies[1:] or readies) * 1e3:9.2f} ms "
          "(first round, with the kernels' load, left out)")


if __name__ == "__main__":
    main()
