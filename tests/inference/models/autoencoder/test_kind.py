"""The autoencoder kind: trains with PyTorch (skipped only when torch is not importable), exports a graph
with exactly the protocol's input and outputs that onnxruntime scores as torch does, scores injected
anomalies higher, points its contributions at the perturbed feature, and leaves the threshold to ``fit``."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from inference.calibration import graph_scores
from inference.models.autoencoder.graph import TORCH_MISSING, require_torch
from inference.models.autoencoder.kind import KIND
from inference.models.autoencoder.settings import AutoencoderSettings
from inference.train import fit
from inference.training_set import TrainingSet

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="PyTorch is not installed: pip install 'factory-edge[train-torch]'",
)
PERTURBED = 3


def normal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 2))
    x = np.column_stack([base[:, 0], base[:, 1], base[:, 0] + base[:, 1], 2 * base[:, 0] - base[:, 1],
                         -base[:, 1], 0.5 * base[:, 0]]) + 0.05 * rng.normal(size=(n, 6))
    return x * np.array([1.0, 2.0, 0.5, 10.0, 1.0, 3.0]) + np.array([0.0, 5.0, -1.0, 100.0, 0.0, 2.0])


def anomalies(n: int = 30) -> np.ndarray:
    x = normal(n, seed=7)
    x[:, PERTURBED] += 4 * np.std(normal(400)[:, PERTURBED])
    return x


@needs_torch
def test_fit_scores_anomalies_higher_and_onnx_equals_torch() -> None:
    x = normal(400)
    options = AutoencoderSettings(code=2, hidden=32)
    fitted = KIND.fit(x[:320], options, lambda _m: None)
    assert fitted.threshold is None  # calibrated by inference.train.fit
    assert fitted.extra["onnx_max_diff"] <= 1e-5
    probe = np.concatenate([x[320:], anomalies()])
    (onnx_scores,) = graph_scores(fitted.onnx, probe)
    np.testing.assert_allclose(onnx_scores, fitted.score(probe), rtol=1e-5, atol=1e-5)
    s_norm, s_anom = onnx_scores[:80], onnx_scores[80:]
    assert s_anom.min() > np.quantile(s_norm, 0.99)

    import onnx
    import onnxruntime as ort

    graph = onnx.load_from_string(fitted.onnx).graph
    assert [i.name for i in graph.input] == ["features"]
    assert [o.name for o in graph.output] == ["score", "contributions"]
    sess = ort.InferenceSession(fitted.onnx, providers=["CPUExecutionProvider"])
    score, contrib = sess.run(None, {"features": probe.astype(np.float32)})
    assert score.shape == (110,) and contrib.shape == (110, 6)
    np.testing.assert_allclose(contrib.mean(axis=1), score, rtol=1e-5)
    assert np.mean(contrib[80:].argmax(axis=1) == PERTURBED) >= 0.9


@needs_torch
def test_training_is_deterministic_and_stops_early() -> None:
    x = normal(240)
    options = AutoencoderSettings(epochs=400, patience=3, seed=5)
    a = KIND.fit(x, options, lambda _m: None)
    b = KIND.fit(x, options, lambda _m: None)
    assert a.onnx == b.onnx and a.extra["epochs"] < 400
    c = KIND.fit(x, options.model_copy(update={"seed": 6}), lambda _m: None)
    assert c.onnx != a.onnx


@needs_torch
def test_train_fit_calibrates_the_threshold() -> None:
    ts = TrainingSet([f"s__f{i}" for i in range(6)], normal(300), np.arange(300))
    r = fit(KIND, ts, AutoencoderSettings(quantile=0.95, epochs=50))
    assert r.thresholds == {"score": r.threshold} and r.threshold > 0


def test_without_torch_the_error_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'factory-edge\[train-torch\]'"):
        require_torch()
    with pytest.raises(ImportError, match="train-torch"):
        KIND.fit(normal(50), AutoencoderSettings(), lambda _m: None)
    assert "pip install 'factory-edge[train-torch]'" in TORCH_MISSING


def test_sample_validates() -> None:
    sample = Path(__file__).parents[4] / "inference" / "models" / "autoencoder" / "sample.toml"
    AutoencoderSettings.model_validate(tomllib.loads(sample.read_text()))
