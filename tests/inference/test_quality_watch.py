"""Data-quality findings of the inference stage: a dropout is a gap, a stuck sensor repeating its value a
flatline, each raised once and cleared once; a clean plant, a tag that starts late and an equipment gone
quiet as a whole raise nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge.simulator.faults import Fault
from edge.simulator.plant import Plant, PlantConfig
from inference.quality_watch import QualityWatch
from inference.settings import InferenceSettings
from inference.windows import Window
from tests.inference.plant_samples import T0_US, contextualized, rows, run_stage

MACHINES = ("line1.press1", "line1.press2")


def settings(tmp_path: Path) -> InferenceSettings:
    return InferenceSettings.model_validate({
        "window_s": 10, "hop_s": 10, "grid_hz": 1, "signal_key": "measure", "clock": "event",
        "allowed_lateness_s": 0, "models_dir": str(tmp_path / "models"), "idle_close_s": 3600,
    })


def findings(tmp_path: Path, faults: tuple[Fault, ...], seconds: int = 240) -> list[dict[str, Any]]:
    plant = Plant(PlantConfig(lines=1, machines=2, rate_hz=2.0, seed=3, faults=faults), start_us=T0_US)
    out = run_stage(settings(tmp_path), contextualized(plant, seconds * 2, MACHINES))
    return [json.loads(r["detail"]) | {"message": r["message"]} for r in rows(out, "events")
            if r["kind"] == "data_quality"]


def test_a_dropout_is_a_gap_and_a_stuck_sensor_a_flatline(tmp_path: Path) -> None:
    faults = (Fault("dropout", "line1.press2", "current", 60.0, 90.0),
              Fault("stuck_sensor", "line1.press1", "temperature", 120.0, 160.0))
    found = findings(tmp_path, faults)
    summary = [(f["asset"].rsplit("/", 1)[-1], f["signal"], f["rule"], f["state"]) for f in found]
    assert summary == [
        ("press2", "current", "gap", "raised"), ("press2", "current", "gap", "cleared"),
        ("press1", "temperature", "flatline", "raised"), ("press1", "temperature", "flatline", "cleared"),
    ]
    gap_raised, gap_cleared, flat_raised, flat_cleared = found
    us = 1_000_000
    # the gap shows once the hold (5 s) ran out: in the window 60-70 s; it clears in the first window after
    assert gap_raised["window_start"] == _iso(T0_US + 60 * us) and gap_raised["empty_s"] == 5.0
    assert gap_cleared["window_start"] == _iso(T0_US + 90 * us)
    # the first window wholly inside the stuck span; cleared by the first one holding a new value
    assert flat_raised["window_start"] == _iso(T0_US + 120 * us)
    assert flat_cleared["window_start"] == _iso(T0_US + 160 * us)
    assert "current" in gap_raised["message"] and "gap raised" in gap_raised["message"]


def test_a_clean_plant_raises_nothing(tmp_path: Path) -> None:
    assert findings(tmp_path, (), seconds=600) == []


def window(grid: list[list[float]], signals: tuple[str, ...] = ("a", "b"), start_s: int = 0) -> Window:
    g = np.array(grid, dtype=np.float64)
    return Window("site/m1", start_s * 1_000_000, (start_s + g.shape[1]) * 1_000_000, list(signals), g,
                  int(np.isfinite(g).sum()), 1.0, 0, {})


def test_a_late_starter_and_a_quiet_equipment_are_no_gap() -> None:
    nan = float("nan")
    watch = QualityWatch(grid_hz=1.0)
    # "b" has its first value ever in the third cell: it started late, it did not stop
    assert watch.update([window([[1, 2, 3, 4], [nan, nan, 5, 6]])]) == []
    # the whole equipment quiet (a connection matter): no tag's gap
    assert watch.update([window([[nan, nan, nan, nan], [nan, nan, nan, nan]], start_s=4)]) == []
    # "b" silent while "a" reports: a gap, raised once while it lasts, cleared when "b" reports again
    raised = watch.update([window([[1, 2, 3, 4], [7, nan, nan, nan]], start_s=8)])
    assert [(d["signal"], d["rule"], d["state"], d["empty_s"]) for _, _, d in raised] == [
        ("b", "gap", "raised", 3.0)]
    assert watch.update([window([[1, 2, 3, 4], [nan, nan, nan, nan]], start_s=12)]) == []
    cleared = watch.update([window([[1, 2, 3, 4], [5, 6, 7, 8]], start_s=16)])
    assert [(d["signal"], d["state"]) for _, _, d in cleared] == [("b", "cleared")]
    assert [kind for kind, _, _ in raised + cleared] == ["data_quality", "data_quality"]


def _iso(us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
