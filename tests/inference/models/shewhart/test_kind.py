"""The shewhart kind: fits on normal windows, scores a shift of one feature (in level or in spread) above
normal, its graph equals the numpy reference, its contributions point at the shifted feature, and it leaves
the threshold to ``fit``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from inference.calibration import graph_scores
from inference.models.shewhart.kind import KIND
from inference.models.shewhart.settings import ShewhartSettings
from inference.runtimes.onnx.runtime import OnnxRuntime
from inference.train import fit
from inference.training_set import TrainingSet

SHIFTED = 3
SCALE = np.array([1.0, 2.0, 0.5, 10.0, 1.0, 3.0])
LEVEL = np.array([0.0, 5.0, -1.0, 100.0, 0.0, 2.0])


def normal(n: int, seed: int = 0) -> np.ndarray:
    x: np.ndarray = np.random.default_rng(seed).normal(size=(n, 6)) * SCALE + LEVEL
    return x


def test_fit_scores_a_shifted_feature_higher_and_the_graph_equals_python() -> None:
    x = normal(400)
    fitted = KIND.fit(x[:320], ShewhartSettings.model_validate({}), lambda _m: None)
    assert fitted.threshold is None and fitted.thresholds["z_limit"] > 0
    shifted = normal(30, seed=7)
    shifted[:, SHIFTED] += 6 * SCALE[SHIFTED]
    probe = np.concatenate([x[320:], shifted])
    (onnx_scores,) = graph_scores(fitted.onnx, probe)
    np.testing.assert_allclose(onnx_scores, fitted.score(probe), rtol=1e-5, atol=1e-5)
    assert onnx_scores[80:].min() > np.quantile(onnx_scores[:80], 0.99)
    out = OnnxRuntime(fitted.onnx, providers=["CPUExecutionProvider"], intra_op_threads=1).infer(probe)
    assert out["contributions"].shape == probe.shape
    assert (out["contributions"][80:].argmax(axis=1) == SHIFTED).all()
    np.testing.assert_allclose(out["contributions"].max(axis=1), out["score"], rtol=1e-6)


def test_the_score_is_scaled_by_the_training_quantile() -> None:
    x = normal(500)
    lo = KIND.fit(x, ShewhartSettings.model_validate({"quantile": 0.5}), lambda _m: None)
    hi = KIND.fit(x, ShewhartSettings.model_validate({"quantile": 0.99}), lambda _m: None)
    assert abs(np.mean(lo.score(x) <= 1.0) - 0.5) < 0.01
    assert np.mean(hi.score(x) > 1.0) <= 0.011
    assert lo.thresholds["z_limit"] < hi.thresholds["z_limit"]


def test_train_fit_calibrates_the_threshold() -> None:
    ts = TrainingSet([f"s__f{i}" for i in range(6)], normal(300), np.arange(300))
    r = fit(KIND, ts, ShewhartSettings.model_validate({"quantile": 0.95}))
    assert r.thresholds["score"] == r.threshold and r.threshold > 0
    cal = r.metrics["calibration"]
    assert cal["heldout_alarm_rate_after_hysteresis"] <= cal["target_far"] == 0.01


def test_sample_validates() -> None:
    sample = Path(__file__).parents[4] / "inference" / "models" / "shewhart" / "sample.toml"
    ShewhartSettings.model_validate(tomllib.loads(sample.read_text()))
