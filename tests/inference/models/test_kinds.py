"""Every model kind in the table fits a small synthetic set and exports a graph that scores as the fitted
model does in Python, with the thresholds and metrics ``fit`` promises."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.app.plugins import MODEL_KINDS, model_kind
from edge.core.plugins import Plugin, names
from inference.calibration import graph_scores
from inference.train import fit
from inference.training_set import TrainingSet


def synthetic(n: int = 240, f: int = 6, seed: int = 0) -> TrainingSet:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    x[:, 1] = 0.8 * x[:, 0] + 0.2 * x[:, 1]  # some correlation for PCA to find
    return TrainingSet([f"s__f{i}" for i in range(f)], x, np.arange(n))


@pytest.mark.parametrize("plugin", MODEL_KINDS, ids=names(MODEL_KINDS))
def test_kind_graph_scores_like_the_python_model(plugin: Plugin[Any, Any]) -> None:
    kind = model_kind(plugin.name)
    assert kind.name == plugin.name and kind.settings is plugin.settings
    ts = synthetic()
    options = kind.settings.model_validate({"quantile": 0.95})
    fitted = kind.fit(ts.x[:200], options, lambda _m: None)
    probe = np.concatenate([ts.x[200:], 4.0 * ts.x[:10]])
    (onnx_scores,) = graph_scores(fitted.onnx, probe)
    np.testing.assert_allclose(onnx_scores, fitted.score(probe), rtol=1e-3, atol=1e-4)
    r = fit(kind, ts, options)
    assert r.kind == plugin.name and r.onnx and r.thresholds["score"] == r.threshold
    assert r.metrics["quantile"] == 0.95 and len(r.metrics["train_score_deciles"]) == 9
    assert r.holdout.shape == (48, 6)


def test_fit_with_default_options_equals_explicit_defaults() -> None:
    ts = synthetic()
    for plugin in MODEL_KINDS:
        kind = model_kind(plugin.name)
        assert fit(kind, ts).onnx == fit(kind, ts, kind.settings.model_validate({})).onnx
