"""Context-aware baselines: a press making two products at different loads, a PCA trained on an hour of
both. Standardized per product (the MES context of each window), a product change raises no alarm while
bearing wear still does; on the raw features the same model alarms at the product change. A product the
baseline never made is scored against the global statistics and flagged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.core.datamodel import WINDOW_UNSEEN_REGIME
from edge.simulator.faults import Fault
from edge.simulator.plant import Plant, PlantConfig
from inference.manifest import build_manifest
from inference.models.pca.kind import KIND as PCA
from inference.models.pca.settings import PcaSettings
from inference.packages import Registry
from inference.regimes import Regimes, fit_regimes
from inference.runtimes.onnx.runtime import build as onnx_runtime
from inference.settings import InferenceSettings
from inference.train import fit
from inference.training_set import TrainingSet, features_from_samples
from inference.windows import WindowSpec
from tests.inference.plant_samples import T0_US, contextualized, rows, run_stage

MACHINE = ("line1.press1",)
# Temperature follows a product change with the motor's thermal lag (minutes), a transient no per-product
# level describes: the features here are the measures that follow the load at once.
ORDER = [f"{m}__{f}" for m in ("vibration", "current", "pressure") for f in ("mean", "std", "ptp", "slope")]
LIGHT, HEAVY = ("SKU-light", -0.25), ("SKU-heavy", 0.2)
US = 1_000_000
LIVE_US = T0_US + 7200 * US


def products(total_s: int, every_s: int, *runs: tuple[str, float]) -> tuple[tuple[float, str, float], ...]:
    return tuple((float(t), *runs[i % len(runs)]) for i, t in enumerate(range(0, total_s, every_s)))


def settings(models_dir: Path) -> InferenceSettings:
    return InferenceSettings.model_validate({
        "window_s": 10, "hop_s": 10, "grid_hz": 1, "signal_key": "measure", "clock": "event",
        "allowed_lateness_s": 0, "models_dir": str(models_dir), "providers": ["CPUExecutionProvider"],
        "idle_close_s": 3600,
    })


def baseline(models_dir: Path) -> TrainingSet:
    """An hour of normal running, the product changing every 10 minutes."""
    plant = Plant(PlantConfig(lines=1, machines=2, rate_hz=1.0, seed=3, noise_seed=11,
                              products=products(3600, 600, LIGHT, HEAVY)), start_us=T0_US)
    spec = WindowSpec.from_settings(settings(models_dir))
    return features_from_samples([contextualized(plant, 3600, MACHINE)], spec, feature_order=ORDER)


def promote(models_dir: Path, *, regimes: bool) -> dict[str, Any]:
    tset = baseline(models_dir)
    fitted_on = tset
    stats = None
    if regimes:
        stats, fitted_on = fit_regimes(tset, "product")
    result = fit(PCA, fitted_on, PcaSettings.model_validate({"quantile": 0.995, "var": 0.9}))
    s = settings(models_dir)
    manifest = build_manifest("press", tset, result, WindowSpec.from_settings(s), s, ["simulator seed 3"])
    if stats is not None:
        manifest["regimes"] = stats.to_manifest()
    reg = Registry(models_dir)
    pkg = reg.add(manifest, result.onnx, result.holdout)
    reg.validate("press", pkg.version, max_false_alarm_rate=0.5)
    reg.promote("press", pkg.version, force=True)
    return pkg.manifest


def live(models_dir: Path, runs: tuple[tuple[float, str, float], ...],
         faults: tuple[Fault, ...] = ()) -> list[dict[str, Any]]:
    """30 minutes of the same press on another day, scored by the promoted model: insight rows with
    ``t_s``, the window start in seconds from the start of the run."""
    plant = Plant(PlantConfig(lines=1, machines=2, rate_hz=1.0, seed=3, noise_seed=99, products=runs,
                              faults=faults), start_us=LIVE_US)
    out = rows(run_stage(settings(models_dir), contextualized(plant, 1800, MACHINE),
                         make_runtime=onnx_runtime), "insights")
    for r in out:
        r["t_s"] = round((r["window_start"].timestamp() * US - LIVE_US) / US)
    return sorted(out, key=lambda r: r["t_s"])


def alarms(insights: list[dict[str, Any]]) -> list[int]:
    return [r["t_s"] for r in insights if r["severity"] == "alarm"]


CHANGES = products(1800, 600, LIGHT, HEAVY)  # light, heavy from 600 s, light from 1200 s
WEAR = (Fault("bearing_wear", "line1.press1", "vibration", 1500.0, 1800.0),)


@pytest.fixture(scope="module")
def per_product(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    models = tmp_path_factory.mktemp("per-product")
    return models, promote(models, regimes=True)


def test_standardized_per_product_a_product_change_is_no_alarm_and_wear_is(
        per_product: tuple[Path, dict[str, Any]]) -> None:
    models, manifest = per_product
    stats = manifest["regimes"]
    assert stats["key"] == "product" and set(stats["by_key"]) == {"SKU-light", "SKU-heavy"}
    assert all(v["windows"] >= 150 for v in stats["by_key"].values())
    clean = live(models, CHANGES)
    assert len(clean) >= 170 and alarms(clean) == []
    assert not any(r["quality_flags"] & WINDOW_UNSEEN_REGIME for r in clean)
    worn = alarms(live(models, CHANGES, WEAR))
    assert worn and min(worn) >= 1500  # the wear, and nothing before it
    assert len(worn) >= 15  # most of its 30 windows


def test_on_raw_features_the_same_model_alarms_at_the_product_change(tmp_path: Path) -> None:
    promote(tmp_path, regimes=False)
    at_change = [t for t in alarms(live(tmp_path, CHANGES)) if 600 <= t < 720]
    assert at_change  # within two minutes of the change to the heavy part


def test_an_unseen_product_is_scored_against_the_global_statistics_and_flagged(
        per_product: tuple[Path, dict[str, Any]]) -> None:
    models, _ = per_product
    new = live(models, ((0.0, "SKU-new", 0.0),))
    assert new and all(r["quality_flags"] & WINDOW_UNSEEN_REGIME for r in new)
    assert not any(r["gated"] for r in new)  # flagged, still scored and able to alarm


def test_regime_statistics_round_trip_and_need_contexts() -> None:
    x = np.arange(60, dtype=np.float64).reshape(30, 2)
    a: dict[str, str | None] = {"product": "A"}
    b: dict[str, str | None] = {"product": "B"}
    contexts = [a] * 25 + [b] * 5
    tset = TrainingSet(["f1", "f2"], x, np.arange(30, dtype=np.int64), contexts=contexts)
    stats, z = fit_regimes(tset, min_windows=20)
    assert set(stats.by_key) == {"A"}  # B: too few windows for statistics of its own
    assert np.allclose(z.x[:25].mean(axis=0), 0.0) and np.allclose(z.x[:25].std(axis=0), 1.0)
    again = Regimes.from_manifest(stats.to_manifest())
    zz, unseen = again.transform(x, contexts)
    assert np.allclose(zz, z.x) and unseen.tolist() == [False] * 25 + [True] * 5
    with pytest.raises(ValueError, match="no MES context per window"):
        fit_regimes(TrainingSet(["f1", "f2"], x, np.arange(30, dtype=np.int64)))
    with pytest.raises(ValueError, match="has 40 training windows"):
        fit_regimes(tset, min_windows=40)
