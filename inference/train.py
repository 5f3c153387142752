"""Fit anomaly models on a baseline period of normal running and export them as ONNX model packages.

Input: a wide table (CSV or Parquet: a time column and one numeric column per signal) or samples from the
historian. It goes through the same ``Windower`` and ``FeatureExtractor`` as the live pipeline, so the model
sees the features the pipeline produces, in the same order. The windows (time ordered) are split: the first
``1 - holdout`` part fits the model and calibrates the threshold (a quantile of the training scores), the last
part is kept as the held-out set that ``validate`` checks (its false alarm rate).

Models (every ONNX graph has input ``features`` float32 (batch, n) and outputs ``score`` (batch,) and
``contributions`` (batch, n)):

* ``pca``: features standardized with the training mean and std, PCA (scikit-learn) keeping ``var`` of the
  variance. Hotelling T² = Σ t_a²/λ_a and SPE (Q) = ‖z - P Pᵀz‖², each limited by its training quantile;
  ``score`` = max(T²/T²_lim, SPE/SPE_lim), so the alarm threshold is 1.0. ``contributions``: per feature,
  r_j²/SPE_lim + z_j·Σ_a p_ja t_a/λ_a / T²_lim (the SPE and T² contributions, which sum to the two ratios).
  The graph is built with ``onnx.helper`` from the fitted scikit-learn parameters (MatMul, Sub, Div, ...).
* ``iforest``: scikit-learn IsolationForest converted by skl2onnx; ``score`` = -decision_function (higher =
  more anomalous), threshold = training quantile; ``contributions`` = ((x - mean)/std)², the squared standard
  score per feature (the forest has no per-feature attribution; this is a documented proxy).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa

from edge.core.datamodel import CONTEXTUALIZED_SAMPLES, DICT_STR, TS
from inference.windows import GATING_FLAGS, WindowSpec

Progress = Callable[[str], None]
MODEL_KINDS = ("pca", "iforest")


def stderr_progress(stream: TextIO | None = None) -> Progress:
    t0 = time.monotonic()

    def report(msg: str) -> None:
        print(f"[train {time.monotonic() - t0:6.1f}s] {msg}", file=stream or sys.stderr, flush=True)

    return report


@dataclass
class TrainingSet:
    feature_names: list[str]
    x: np.ndarray  # (windows, features) float64, gated windows removed
    window_start_us: np.ndarray
    fingerprint: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- inputs


def read_table(path: Path, time_column: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(ts_us, {signal: values}) of a wide CSV (``,`` or ``;``) or Parquet file."""
    import polars as pl

    if path.suffix.lower() in (".parquet", ".pq"):
        df = pl.read_parquet(path)
    else:
        head = path.read_text(errors="replace").splitlines()[0] if path.stat().st_size else ""
        sep = ";" if head.count(";") > head.count(",") else ","
        df = pl.read_csv(path, separator=sep, try_parse_dates=True)
    tcol = time_column or next(
        (c for c in df.columns if c.lower() in ("datetime", "timestamp", "ts", "time")), df.columns[0]
    )
    t = df.get_column(tcol)
    if t.dtype == pl.Utf8:
        t = t.str.to_datetime()
    if t.dtype.is_temporal():
        ts_us = t.cast(pl.Datetime("us")).cast(pl.Int64).to_numpy()
    else:  # numeric seconds
        ts_us = (t.cast(pl.Float64).to_numpy() * 1e6).astype(np.int64)
    signals = {
        c: df.get_column(c).cast(pl.Float64).to_numpy()
        for c in df.columns
        if c != tcol and df.get_column(c).dtype.is_numeric() and c not in ("anomaly", "changepoint")
    }
    return ts_us, signals


def samples_batch(ts_us: np.ndarray, signals: dict[str, np.ndarray], asset: str) -> pa.RecordBatch:
    """A CONTEXTUALIZED_SAMPLES batch from a wide table (one row per timestamp and signal)."""
    names = list(signals)
    n, k = len(ts_us), len(names)
    ts = np.repeat(np.asarray(ts_us, dtype=np.int64), k)
    vals = (
        np.stack([np.asarray(signals[s], dtype=np.float64) for s in names], axis=1).reshape(-1)
        if k
        else np.zeros(0)
    )
    tag_idx = np.tile(np.arange(k, dtype=np.int32), n)
    tags = pa.DictionaryArray.from_arrays(pa.array(tag_idx), pa.array(names, type=pa.string()))
    rows = n * k
    zeros32 = pa.array(np.zeros(rows, dtype=np.int32))
    asset_arr = pa.DictionaryArray.from_arrays(zeros32, pa.array([asset], type=pa.string()))
    src = pa.DictionaryArray.from_arrays(zeros32, pa.array(["train"], type=pa.string()))
    null = pa.nulls(rows, DICT_STR)
    ts_arr = pa.array(ts, type=pa.int64()).cast(TS)
    return pa.RecordBatch.from_arrays(
        [
            ts_arr,
            ts_arr,
            tags.cast(DICT_STR),
            pa.array(vals, type=pa.float64(), from_pandas=True),
            pa.array(np.zeros(rows, dtype=np.int16)),
            zeros32,
            src,
            asset_arr,
            null,
            null,
            null,
            null,
            null,
            null,
        ],
        schema=CONTEXTUALIZED_SAMPLES,
    )


def features_from_samples(
    batches: Sequence[pa.RecordBatch],
    spec: WindowSpec,
    *,
    spectral: Sequence[str] = (),
    n_bands: int = 8,
    feature_order: Sequence[str] | None = None,
    keep_gated: bool = False,
) -> TrainingSet:
    """Window and featurize samples exactly as the pipeline does; gated windows are dropped unless kept."""
    from inference.features import FeatureExtractor
    from inference.windows import Windower

    win = Windower(spec)
    for b in batches:
        win.add(b)
    far_future = 2**62
    windows = win.ready(now_us=far_future)
    if not keep_gated:
        windows = [w for w in windows if not (w.flags & GATING_FLAGS)]
    fx = FeatureExtractor(spec.grid_hz, spectral, n_bands)
    names, x, n_valid = fx.matrix(windows)
    if feature_order is not None:
        idx = {n: i for i, n in enumerate(names)}
        x = (
            np.stack(
                [x[:, idx[n]] if n in idx else np.full(len(windows), np.nan) for n in feature_order], axis=1
            )
            if windows
            else np.zeros((0, len(feature_order)))
        )
        names = list(feature_order)
    ok = np.isfinite(x).all(axis=1) & (n_valid > 0) if len(windows) else np.zeros(0, dtype=bool)
    starts = np.array([w.start_us for w in windows], dtype=np.int64)
    return TrainingSet(names, x[ok], starts[ok])


def fingerprint(x: np.ndarray, names: Sequence[str], sources: Sequence[str]) -> dict[str, Any]:
    h = hashlib.sha256()
    h.update(json.dumps(list(names)).encode())
    h.update(np.ascontiguousarray(x, dtype=np.float64).tobytes())
    return {
        "sha256": h.hexdigest(),
        "windows": int(x.shape[0]),
        "features": len(names),
        "sources": list(sources),
    }


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- models


def _standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 1e-12 * np.maximum(1.0, np.abs(mu)), sd, 1.0)
    return mu, sd


def _tensor(name: str, arr: np.ndarray) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def pca_onnx(
    mu: np.ndarray, sd: np.ndarray, components: np.ndarray, eigvals: np.ndarray, t2_lim: float, spe_lim: float
) -> bytes:
    """The PCA T²/SPE graph with onnx.helper: input ``features``, outputs ``score``, ``t2``, ``spe``,
    ``contributions``."""
    from onnx import TensorProto, helper

    n = int(mu.shape[0])
    p = components.T  # (n, k)
    nodes = [
        helper.make_node("Sub", ["features", "mu"], ["xc"]),
        helper.make_node("Div", ["xc", "sd"], ["z"]),
        helper.make_node("MatMul", ["z", "P"], ["t"]),  # (b, k)
        helper.make_node("Mul", ["t", "t"], ["t_sq"]),
        helper.make_node("Div", ["t_sq", "lam"], ["t_sq_l"]),
        helper.make_node("ReduceSum", ["t_sq_l", "axis1"], ["t2"], keepdims=0),
        helper.make_node("MatMul", ["t", "PT"], ["zhat"]),
        helper.make_node("Sub", ["z", "zhat"], ["r"]),
        helper.make_node("Mul", ["r", "r"], ["r_sq"]),
        helper.make_node("ReduceSum", ["r_sq", "axis1"], ["spe"], keepdims=0),
        helper.make_node("Div", ["t2", "t2_lim"], ["t2_ratio"]),
        helper.make_node("Div", ["spe", "spe_lim"], ["spe_ratio"]),
        helper.make_node("Max", ["t2_ratio", "spe_ratio"], ["score"]),
        # contributions: r_j²/SPE_lim + z_j * (P (t/λ))_j / T²_lim
        helper.make_node("Div", ["t", "lam"], ["t_l"]),
        helper.make_node("MatMul", ["t_l", "PT"], ["back"]),
        helper.make_node("Mul", ["z", "back"], ["c_t2"]),
        helper.make_node("Div", ["c_t2", "t2_lim"], ["c_t2_r"]),
        helper.make_node("Div", ["r_sq", "spe_lim"], ["c_spe_r"]),
        helper.make_node("Add", ["c_t2_r", "c_spe_r"], ["contributions"]),
    ]
    inits = [
        _tensor("mu", mu),
        _tensor("sd", sd),
        _tensor("P", p),
        _tensor("PT", p.T.copy()),
        _tensor("lam", eigvals),
        _tensor("t2_lim", np.array(t2_lim)),
        _tensor("spe_lim", np.array(spe_lim)),
    ]
    from onnx import numpy_helper

    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    graph = helper.make_graph(
        nodes,
        "pca_t2_spe",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, [None, n]),
            helper.make_tensor_value_info("t2", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("spe", TensorProto.FLOAT, [None]),
        ],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="factory-edge"
    )
    model.ir_version = 8
    import onnx

    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def iforest_onnx(forest: Any, n: int, mu: np.ndarray, sd: np.ndarray) -> bytes:
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(
        forest,
        initial_types=[("features", FloatTensorType([None, n]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
        model_optim=False,  # the identity-removal pass is quadratic in nodes: minutes for 200 trees
    )
    g = model.graph
    g.node.extend(
        [
            helper.make_node("Neg", ["scores"], ["neg_scores"]),
            helper.make_node("Reshape", ["neg_scores", "flat_shape"], ["score"]),
            helper.make_node("Sub", ["features", "if_mu"], ["if_xc"]),
            helper.make_node("Div", ["if_xc", "if_sd"], ["if_z"]),
            helper.make_node("Mul", ["if_z", "if_z"], ["contributions"]),
        ]
    )
    from onnx import numpy_helper

    g.initializer.extend(
        [
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape"),
            _tensor("if_mu", mu),
            _tensor("if_sd", sd),
        ]
    )
    while len(g.output):
        g.output.pop()
    g.output.extend(
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, [None, n]),
        ]
    )
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


@dataclass
class TrainResult:
    kind: str
    onnx: bytes
    threshold: float
    thresholds: dict[str, float]
    metrics: dict[str, Any]
    holdout: np.ndarray
    extra: dict[str, Any]


def fit(
    kind: str,
    ts: TrainingSet,
    *,
    quantile: float = 0.99,
    holdout: float = 0.2,
    var: float = 0.95,
    seed: int = 0,
    n_trees: int = 100,
    progress: Progress | None = None,
) -> TrainResult:
    """Fit one model kind on ``ts``; the threshold is the ``quantile`` of the training scores."""
    say = progress or (lambda _m: None)
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    n_win, n_feat = ts.x.shape
    if n_win < 20:
        raise ValueError(f"only {n_win} good windows in the training data; need at least 20")
    n_train = max(10, round(n_win * (1.0 - holdout)))
    x_train, x_hold = ts.x[:n_train], ts.x[n_train:]
    say(f"{kind}: {n_win} windows x {n_feat} features; {len(x_train)} to fit, {len(x_hold)} held out")
    mu, sd = _standardizer(x_train)
    extra: dict[str, Any] = {}
    if kind == "pca":
        from sklearn.decomposition import PCA

        z = (x_train - mu) / sd
        pca = PCA(n_components=var if 0 < var < 1 else None, svd_solver="full", random_state=seed).fit(z)
        comps = pca.components_
        lam = np.maximum(pca.explained_variance_, 1e-12)
        say(
            f"pca: kept {comps.shape[0]} of {n_feat} components ({pca.explained_variance_ratio_.sum():.3f} "
            "of the variance)"
        )
        t = z @ comps.T
        t2 = np.sum(t * t / lam, axis=1)
        r = z - t @ comps
        spe = np.sum(r * r, axis=1)
        t2_lim = float(max(np.quantile(t2, quantile), 1e-9))
        spe_lim = float(max(np.quantile(spe, quantile), 1e-9))
        onnx_bytes = pca_onnx(mu, sd, comps, lam, t2_lim, spe_lim)
        threshold = 1.0
        thresholds = {"score": 1.0, "t2": t2_lim, "spe": spe_lim}
        extra = {
            "components": int(comps.shape[0]),
            "explained_variance": float(pca.explained_variance_ratio_.sum()),
        }
    else:
        from sklearn.ensemble import IsolationForest

        say(f"iforest: fitting {n_trees} trees")
        forest = IsolationForest(n_estimators=n_trees, random_state=seed).fit(x_train.astype(np.float32))
        say("iforest: converting to ONNX (skl2onnx)")
        onnx_bytes = iforest_onnx(forest, n_feat, mu, sd)
        threshold = float("nan")  # set from the ONNX scores below
        thresholds = {}
    say(f"{kind}: scoring the training and held-out windows through onnxruntime")
    from inference.runtimes.onnx.runtime import OnnxRuntime

    rt = OnnxRuntime(onnx_bytes, providers=["CPUExecutionProvider"], intra_op_threads=1)
    s_train = rt.infer(x_train)["score"].astype(np.float64)
    s_hold = rt.infer(x_hold)["score"].astype(np.float64) if len(x_hold) else np.zeros(0)
    if kind == "iforest":
        threshold = float(np.quantile(s_train, quantile))
        thresholds = {"score": threshold}
    metrics = {
        "train_windows": len(x_train),
        "holdout_windows": len(x_hold),
        "quantile": quantile,
        "train_false_alarm_rate": float(np.mean(s_train >= threshold)),
        "holdout_false_alarm_rate": float(np.mean(s_hold >= threshold)) if len(s_hold) else None,
        "train_score_p50": float(np.median(s_train)),
        "train_score_deciles": [float(q) for q in np.quantile(s_train, np.linspace(0.1, 0.9, 9))],
    }
    say(
        f"{kind}: threshold {threshold:.4g}; false alarms train {metrics['train_false_alarm_rate']:.3%}, "
        f"held out {metrics['holdout_false_alarm_rate'] if len(s_hold) else 'n/a'}"
    )
    return TrainResult(kind, onnx_bytes, threshold, thresholds, metrics, x_hold, extra)


# --------------------------------------------------------------------------------------------- end to end


def read_historian(dsn: str, asset: str, t_from: Any, t_to: Any) -> pa.RecordBatch:
    """Samples of one equipment from the historian's ``samples`` table as a CONTEXTUALIZED_SAMPLES batch.

    Assumes the historian core's ``samples`` table has ``ts``, ``tag``, ``value``, ``quality`` and ``asset``
    columns (as the data model does)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT ts, tag::text, value, quality FROM samples WHERE asset = %s AND ts >= %s AND ts < %s "
            "ORDER BY ts",
            (asset, t_from, t_to),
        ).fetchall()
    if not rows:
        raise ValueError(f"no samples of {asset} between {t_from} and {t_to} in the historian")
    ts_us = np.array([int(r[0].timestamp() * 1e6) for r in rows], dtype=np.int64)
    tags = [r[1] for r in rows]
    vals = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64)
    q = np.array([r[3] for r in rows], dtype=np.int16)
    from edge.core.datamodel import samples_from_arrays

    s = samples_from_arrays(ts_us, tags, vals, source="historian", quality=q)
    n = s.num_rows
    a = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([asset]))
    null = pa.nulls(n, DICT_STR)
    return pa.RecordBatch.from_arrays(
        [*s.columns, a.cast(DICT_STR), null, null, null, null, null, null], schema=CONTEXTUALIZED_SAMPLES
    )


def build_manifest(
    name: str,
    kind: str,
    tset: TrainingSet,
    result: TrainResult,
    spec: WindowSpec,
    settings: Any,
    sources: Sequence[str],
    *,
    assets: Sequence[str] = (),
) -> dict[str, Any]:
    """The package manifest of a fitted model: features in order, thresholds, the window settings it was
    featurized with, the training data's fingerprint and the fit's metrics."""
    from datetime import UTC, datetime

    return {
        "name": name,
        "kind": kind,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "features": tset.feature_names,
        "input": "features",
        "outputs": {"score": "score", "contributions": "contributions"},
        "threshold": result.threshold,
        "thresholds": result.thresholds,
        "window": {
            "window_s": spec.window_s,
            "hop_s": spec.hop_s,
            "grid_hz": spec.grid_hz,
            "max_hold_s": spec.max_hold_s,
            "signal_key": spec.signal_key,
            "spectral_signals": list(settings.spectral_signals),
            "n_bands": settings.n_bands,
        },
        "training": fingerprint(tset.x, tset.feature_names, sources),
        "metrics": result.metrics,
        "model": result.extra,
        "assets": list(assets),
    }


def train_to_registry(
    settings: Any,
    *,
    name: str,
    kind: str = "pca",
    csv: Path | None = None,
    parquet: Path | None = None,
    dsn: str | None = None,
    asset: str | None = None,
    t_from: Any = None,
    t_to: Any = None,
    quantile: float = 0.99,
    holdout: float = 0.2,
    var: float = 0.95,
    time_column: str | None = None,
    progress: Progress | None = None,
) -> Any:
    """Read the baseline, featurize it as the pipeline does, fit, and register the package (not promoted)."""
    from inference.packages import Registry

    say = progress or stderr_progress()
    spec = WindowSpec.from_settings(settings)
    sources: list[str] = []
    if csv is not None or parquet is not None:
        path = Path(csv or parquet)  # type: ignore[arg-type]
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        say(f"reading {path}")
        ts_us, signals = read_table(path, time_column)
        say(f"{len(ts_us)} rows x {len(signals)} signals")
        batch = samples_batch(ts_us, signals, asset or "baseline")
        sources.append(f"{path.name} sha256:{file_sha256(path)}")
    elif dsn is not None:
        if asset is None:
            raise ValueError("--dsn needs --asset")
        say(f"reading samples of {asset} from the historian")
        batch = read_historian(dsn, asset, t_from, t_to)
        sources.append(f"historian {asset} {t_from}..{t_to} rows:{batch.num_rows}")
    else:
        raise ValueError("give a CSV, a Parquet file or a historian DSN")
    say(f"windowing: {spec.window_s:g}s windows every {spec.hop_s:g}s on a {spec.grid_hz:g} Hz grid")
    tset = features_from_samples([batch], spec, spectral=settings.spectral_signals, n_bands=settings.n_bands)
    say(f"{tset.x.shape[0]} good windows x {tset.x.shape[1]} features")
    result = fit(kind, tset, quantile=quantile, holdout=holdout, var=var, progress=say)
    manifest = build_manifest(name, kind, tset, result, spec, settings, sources,
                              assets=[asset] if asset and dsn else [])
    reg = Registry(settings.models_dir)
    pkg = reg.add(manifest, result.onnx, result.holdout)
    say(f"registered {name} v{pkg.version}")
    return pkg
