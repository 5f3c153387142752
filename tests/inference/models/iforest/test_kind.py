"""The iforest kind: the threshold is the quantile of the exported graph's training scores."""

from __future__ import annotations

import numpy as np

from inference.calibration import graph_scores
from inference.models.iforest.kind import KIND
from inference.models.iforest.settings import IforestSettings
from inference.train import fit
from tests.inference.models.test_kinds import synthetic


def test_iforest_threshold_is_the_training_quantile() -> None:
    ts = synthetic()
    r = fit(KIND, ts, IforestSettings(n_estimators=20, quantile=0.9), holdout=0.25)
    (s_train,) = graph_scores(r.onnx, ts.x[:180])
    assert r.threshold == float(np.quantile(s_train, 0.9)) and r.thresholds == {"score": r.threshold}
