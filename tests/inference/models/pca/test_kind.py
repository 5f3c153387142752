"""The pca kind: its thresholds are the T² and SPE limits, the alarm threshold 1.0."""

from __future__ import annotations

from inference.models.pca.kind import KIND
from inference.models.pca.settings import PcaSettings
from inference.train import fit
from tests.inference.models.test_kinds import synthetic


def test_pca_limits_and_components() -> None:
    r = fit(KIND, synthetic(), PcaSettings(var=0.8))
    assert r.threshold > 0 and set(r.thresholds) == {"score", "t2", "spe"}
    assert 0 < r.extra["components"] < 6 and r.extra["explained_variance"] >= 0.8
