"""The simulator's injected overheating, scored by a baseline trained on the same machine's normal running:
the alarm's explanation names temperature first, with the baseline the training data really had."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np

from edge.simulator.faults import Fault
from tests.inference.explain.sim_support import MACHINE, T0_US, machine_samples, score, train_baseline

BASELINE_S = 1800
RUN_S = 900
FAULT = Fault("overheating", MACHINE, "temperature", 300.0, 900.0)


def _us(ts: datetime) -> int:
    return round(ts.timestamp() * 1e6)


def test_overheating_alarm_names_temperature_first_with_the_training_baseline(tmp_path: Path) -> None:
    baseline = machine_samples(BASELINE_S, start_us=T0_US, noise_seed=11)
    manifest = train_baseline(tmp_path / "models", baseline)
    stats = manifest["feature_stats"]["temperature__mean"]
    # the baseline recorded is the training data's own: 10 s window means of the raw temperature
    chunks = baseline.temperature[: len(baseline.temperature) // 10 * 10].reshape(-1, 10).mean(axis=1)
    assert stats["unit"] == "degC"
    assert abs(stats["mean"] - float(np.mean(baseline.temperature))) < 0.05
    assert abs(stats["sd"] - float(np.std(chunks))) < 0.1 * float(np.std(chunks)) + 1e-9

    start = T0_US + (BASELINE_S + 600) * 1_000_000
    run = machine_samples(RUN_S, start_us=start, noise_seed=12, faults=(FAULT,))
    truth = run.plant.label_record(FAULT)  # the simulator's ground truth of the fault
    truth_start, truth_end = int(str(truth["start_us"])), int(str(truth["end_us"]))
    truth_tag, truth_asset = str(truth["tag"]), str(truth["asset"])
    insights, features = score(tmp_path / "models", run)
    alarms = [r for r in insights if r["severity"] == "alarm"]
    assert alarms, "the overheating raised no alarm"
    in_fault = [r for r in alarms
                if _us(r["window_end"]) > truth_start and _us(r["window_start"]) < truth_end]
    assert in_fault and all(r["asset"] == truth_asset for r in in_fault)
    assert all(r["explanation"] is None for r in insights if r["severity"] == "ok")

    first = json.loads(in_fault[0]["explanation"])
    assert first["features"][0]["signal"] == truth_tag.rsplit(".", 1)[-1] == "temperature"
    assert first["summary"].startswith("temperature ")
    # every alarm of the fault leads with temperature; its mean against the training baseline, in degC
    docs = [json.loads(r["explanation"]) for r in in_fault]
    assert all(d["features"][0]["signal"] == "temperature" for d in docs)
    row, doc = next((r, d) for r, d in zip(in_fault, docs, strict=True)
                    if d["features"][0]["feature"] == "temperature__mean")
    item = doc["features"][0]
    window = next(f for f in features if f["window_end"] == row["window_end"] and f["asset"] == row["asset"])
    assert item["baseline_mean"] == round(stats["mean"], 6) and item["baseline_sd"] == round(stats["sd"], 6)
    assert item["unit"] == "degC"
    assert abs(item["value"] - window["temperature__mean"]) < 1e-4
    assert abs(item["deviation"] - (window["temperature__mean"] - stats["mean"])) < 1e-4
    assert item["deviation"] > 3 * stats["sd"]
    assert 10 <= stats["mean"] < 100  # shown with one decimal, and its spread with as many
    assert f"baseline {stats['mean']:.1f} ± {stats['sd']:.1f}" in doc["summary"]
