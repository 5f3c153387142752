"""Calibration of a fitted model on its exported graph: the training and held-out windows are scored through
onnxruntime (what the pipeline will run), the threshold is set where the kind left it open, and the fit's
metrics (false alarm rates, the training score deciles drift is measured against) are computed."""

from __future__ import annotations

from typing import Any

import numpy as np


def graph_scores(onnx: bytes, *parts: np.ndarray) -> list[np.ndarray]:
    """The ``score`` output of the graph for the rows of each part (float64; empty for a part of no rows),
    in one onnxruntime session on the CPU."""
    from inference.runtimes.onnx.runtime import OnnxRuntime

    rt = OnnxRuntime(onnx, providers=["CPUExecutionProvider"], intra_op_threads=1)
    return [np.asarray(rt.infer(x)["score"].astype(np.float64)) if len(x) else np.zeros(0) for x in parts]


def quantile_threshold(train_scores: np.ndarray, quantile: float) -> float:
    return float(np.quantile(train_scores, quantile))


def fit_metrics(
    s_train: np.ndarray, s_hold: np.ndarray, threshold: float, quantile: float
) -> dict[str, Any]:
    """What the manifest records of a fit; ``train_score_deciles`` is the reference of the drift monitor."""
    return {
        "train_windows": len(s_train),
        "holdout_windows": len(s_hold),
        "quantile": quantile,
        "train_false_alarm_rate": float(np.mean(s_train >= threshold)),
        "holdout_false_alarm_rate": float(np.mean(s_hold >= threshold)) if len(s_hold) else None,
        "train_score_p50": float(np.median(s_train)),
        "train_score_deciles": [float(q) for q in np.quantile(s_train, np.linspace(0.1, 0.9, 9))],
    }
