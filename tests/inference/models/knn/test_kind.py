"""The knn kind: fits on normal windows, scores injected anomalies higher, its graph equals the numpy
reference, its contributions point at the perturbed feature, and it leaves the threshold to ``fit``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from inference.calibration import graph_scores
from inference.models.knn.kind import KIND
from inference.models.knn.settings import KnnSettings
from inference.runtimes.onnx.runtime import OnnxRuntime
from inference.train import fit
from inference.training_set import TrainingSet

PERTURBED = 3


def normal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 1] = 0.8 * x[:, 0] + 0.2 * x[:, 1]
    return x * np.array([1.0, 2.0, 0.5, 10.0, 1.0, 3.0]) + np.array([0.0, 5.0, -1.0, 100.0, 0.0, 2.0])


def anomalies(n: int = 30) -> np.ndarray:
    x = normal(n, seed=7)
    x[:, PERTURBED] += 6 * 10.0  # six standard deviations on one feature
    return x


def test_fit_scores_anomalies_higher_and_the_graph_equals_python() -> None:
    x = normal(400)
    fitted = KIND.fit(x[:320], KnnSettings(k=5), lambda _m: None)
    assert fitted.threshold is None  # calibrated by inference.train.fit
    probe = np.concatenate([x[320:], anomalies()])
    (onnx_scores,) = graph_scores(fitted.onnx, probe)
    np.testing.assert_allclose(onnx_scores, fitted.score(probe), rtol=1e-5, atol=1e-5)
    s_norm, s_anom = onnx_scores[:80], onnx_scores[80:]
    assert s_anom.min() > np.quantile(s_norm, 0.99)
    out = OnnxRuntime(fitted.onnx, providers=["CPUExecutionProvider"], intra_op_threads=1).infer(probe)
    assert set(out) >= {"score", "contributions"} and out["contributions"].shape == probe.shape
    assert (out["contributions"][80:].argmax(axis=1) == PERTURBED).all()


def test_train_fit_calibrates_the_threshold() -> None:
    ts = TrainingSet([f"s__f{i}" for i in range(6)], normal(300), np.arange(300))
    r = fit(KIND, ts, KnnSettings(quantile=0.95))
    assert r.thresholds == {"score": r.threshold} and r.threshold > 0
    assert r.metrics["train_false_alarm_rate"] <= 0.06


def test_max_reference_subsamples_by_seed_and_k_is_capped() -> None:
    x = normal(500)
    a = KIND.fit(x, KnnSettings(max_reference=50, seed=1), lambda _m: None)
    b = KIND.fit(x, KnnSettings(max_reference=50, seed=1), lambda _m: None)
    c = KIND.fit(x, KnnSettings(max_reference=50, seed=2), lambda _m: None)
    assert a.extra["reference_windows"] == 50 and a.onnx == b.onnx != c.onnx
    small = KIND.fit(x[:3], KnnSettings(k=5), lambda _m: None)
    assert small.extra["k"] == 3
    (s,) = graph_scores(small.onnx, x[:3])
    np.testing.assert_allclose(s, small.score(x[:3]), atol=1e-5)


def test_sample_validates() -> None:
    sample = Path(__file__).parents[4] / "inference" / "models" / "knn" / "sample.toml"
    KnnSettings.model_validate(tomllib.loads(sample.read_text()))
