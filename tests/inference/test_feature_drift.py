"""Drift per feature: PSI and KS against the training deciles, the score, the share of gated windows; an
episode starts and ends once, naming the features that moved most."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from inference.drift import DriftMonitor
from inference.feature_drift import FeatureDriftMonitor, drift_monitor, feature_reference, ks_at_deciles

NAMES = ["a__mean", "a__std", "b__mean", "flat__mean"]


def manifest(rng: np.random.Generator) -> tuple[dict[str, object], np.ndarray]:
    x = rng.normal(size=(2000, 4))
    x[:, 3] = 1.0  # a constant feature has no distribution to compare
    scores = np.abs(x[:, :3]).sum(axis=1)
    deciles = [float(q) for q in np.quantile(scores, np.linspace(0.1, 0.9, 9))]
    return {"features": NAMES, "reference": feature_reference(x, NAMES),
            "metrics": {"train_score_deciles": deciles}}, x


def feed(mon: FeatureDriftMonitor, x: np.ndarray, gated: np.ndarray | None = None) -> list[dict[str, object]]:
    g = np.zeros(len(x), dtype=bool) if gated is None else gated
    return mon.observe(x, NAMES, np.abs(x[:, :3]).sum(axis=1), g, ["acme/line1/press1"] * len(x))


def test_a_moved_feature_starts_and_ends_one_episode() -> None:
    rng = np.random.default_rng(1)
    m, _ = manifest(rng)
    mon = FeatureDriftMonitor.from_manifest("press", m)
    assert mon is not None and mon.features == NAMES[:3]
    assert feed(mon, rng.normal(size=(1000, 4))) == []
    moved = rng.normal(size=(600, 4))
    moved[:, 2] += 2.0  # b's level moves
    events = feed(mon, moved)
    assert len(events) == 1 and events[0]["drift"] is True
    top = events[0]["features"]
    assert top[0]["feature"] == "b__mean" and top[0]["psi"] > 0.25  # type: ignore[index]
    assert top[1]["psi"] < 0.25  # type: ignore[index]  # the others did not move
    assert "b__mean" in str(events[0]["message"]) and events[0]["asset"] == "acme/line1/press1"
    assert feed(mon, moved) == []  # one episode, one start
    worst = mon.last["features"][0]  # the whole buffer moved by now
    assert worst["feature"] == "b__mean" and worst["psi"] > 1.0 and worst["ks"] > 0.5
    back = feed(mon, rng.normal(size=(1000, 4)))
    assert [e["drift"] for e in back] == [False]


def test_gated_share_alone_starts_an_episode() -> None:
    rng = np.random.default_rng(2)
    m, _ = manifest(rng)
    mon = FeatureDriftMonitor.from_manifest("press", m)
    assert mon is not None
    x = rng.normal(size=(600, 4))
    gated = np.arange(600) % 3 == 0  # a third of the windows gated: inputs bad or missing
    events = feed(mon, x, gated)
    assert [e["drift"] for e in events] == [True] and events[0]["gated_share"] > 0.3


def test_ks_at_deciles_is_zero_on_the_reference_and_one_far_away() -> None:
    x = np.random.default_rng(3).normal(size=(5000, 1))
    edges = np.quantile(x, np.linspace(0.1, 0.9, 9), axis=0)
    assert ks_at_deciles(x, edges)[0] < 0.01
    assert ks_at_deciles(x + 100, edges)[0] == 0.9


def test_a_package_without_a_reference_keeps_the_score_monitor() -> None:
    pkg = SimpleNamespace(manifest={"features": NAMES, "metrics": {"train_score_deciles": [1.0, 2.0]}})
    mon = drift_monitor(SimpleNamespace(name="old", package=pkg))
    assert isinstance(mon, DriftMonitor)
    pkg2 = SimpleNamespace(manifest=manifest(np.random.default_rng(4))[0])
    assert isinstance(drift_monitor(SimpleNamespace(name="new", package=pkg2)), FeatureDriftMonitor)


def test_a_discrete_feature_with_ties_does_not_drift_by_itself() -> None:
    """Zero-crossing counts repeat: their decile bins do not hold 10 % each in training either."""
    rng = np.random.default_rng(5)
    names = ["zcr", "mean"]
    train = np.column_stack([rng.poisson(3, 3000).astype(float), rng.normal(size=3000)])
    ref = feature_reference(train, names)
    assert abs(sum(ref["shares"]["zcr"]) - 1.0) < 1e-9 and max(ref["shares"]["zcr"]) > 0.15
    mon = FeatureDriftMonitor.from_manifest("m", {"features": names, "reference": ref, "metrics": {}})
    assert mon is not None
    live = np.column_stack([rng.poisson(3, 2000).astype(float), rng.normal(size=2000)])
    assert mon.observe(live, names, live[:, 1], np.zeros(2000, dtype=bool), ["eq"] * 2000) == []
    assert mon.last["feature_psi_max"] < 0.1
