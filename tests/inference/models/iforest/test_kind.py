"""The iforest kind: the threshold is cross-calibrated on held-out scores of the exported graph."""

from __future__ import annotations

from inference.models.iforest.kind import KIND
from inference.models.iforest.settings import IforestSettings
from inference.train import fit
from tests.inference.models.test_kinds import synthetic


def test_iforest_threshold_is_cross_calibrated() -> None:
    r = fit(KIND, synthetic(), IforestSettings(n_estimators=20, target_far=0.05), holdout=0.25)
    assert r.thresholds == {"score": r.threshold}
    assert r.metrics["calibration"]["heldout_alarm_rate_after_hysteresis"] <= 0.05
