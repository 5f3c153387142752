"""The plant simulator as the inference stage sees it: contextualized samples of one machine, a PCA baseline
trained on its normal running (with the manifest's training statistics), and the stage run over a stretch
with injected faults on the event clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from edge.core.datamodel import CONTEXTUALIZED_SAMPLES
from edge.core.envelope import Envelope
from edge.simulator.faults import Fault
from edge.simulator.plant import Plant, PlantConfig
from inference.manifest import build_manifest
from inference.models.pca.kind import KIND as PCA
from inference.models.pca.settings import PcaSettings
from inference.packages import Registry
from inference.runtimes.onnx.runtime import build as onnx_runtime
from inference.settings import InferenceSettings
from inference.stage import FLUSH_US, InferenceStage
from inference.train import fit
from inference.training_set import features_from_samples
from inference.windows import WindowSpec

MACHINE = "line1.press2"
T0_US = 1_764_000_000_000_000
ORDER = [f"{m}__{f}" for m in ("vibration", "temperature", "current", "pressure")
         for f in ("mean", "std", "ptp", "slope")]


def settings(models_dir: Path) -> InferenceSettings:
    return InferenceSettings.model_validate({
        "window_s": 10, "hop_s": 10, "grid_hz": 1, "signal_key": "measure", "clock": "event",
        "allowed_lateness_s": 0, "models_dir": str(models_dir), "providers": ["CPUExecutionProvider"],
        "hysteresis_windows": 1, "idle_close_s": 3600,
    })


@dataclass
class Run:
    batch: pa.RecordBatch  # the machine's contextualized samples
    temperature: np.ndarray  # its raw temperature values (degC), in time order
    asset: str
    plant: Plant


def machine_samples(seconds: int, *, start_us: int, noise_seed: int, faults: tuple[Fault, ...] = ()) -> Run:
    """``seconds`` of MACHINE at 1 Hz as CONTEXTUALIZED_SAMPLES (asset, measure, unit from the plant)."""
    plant = Plant(PlantConfig(lines=1, machines=2, rate_hz=1.0, seed=3, noise_seed=noise_seed, faults=faults),
                  start_us=start_us)
    tags = {t.name: t for t in plant.tags}
    cols: dict[str, list[Any]] = {f.name: [] for f in CONTEXTUALIZED_SAMPLES}
    temps: list[float] = []
    for ts, names, values in plant.samples(seconds):
        for t_us, name, value in zip(ts.tolist(), names.tolist(), values.tolist(), strict=True):
            tag = tags[name]
            if tag.machine != MACHINE:
                continue
            for key, v in (("ts", t_us), ("recv_ts", t_us), ("tag", name), ("value", value), ("quality", 0),
                           ("flags", 0), ("source", "sim"), ("asset", tag.asset), ("measure", tag.measure),
                           ("unit", tag.unit), ("work_order", "WO-1"), ("product", "P-1"), ("batch", "B-1"),
                           ("shift", "A")):
                cols[key].append(v)
            if tag.measure == "temperature":
                temps.append(value)
    asset = next(t.asset for t in plant.tags if t.machine == MACHINE)
    batch = pa.RecordBatch.from_pydict(cols, schema=CONTEXTUALIZED_SAMPLES)
    return Run(batch, np.array(temps), asset, plant)


def train_baseline(models_dir: Path, baseline: Run) -> dict[str, Any]:
    """A PCA on the baseline's windows, registered and promoted as ``press-pca``: its manifest."""
    s = settings(models_dir)
    spec = WindowSpec.from_settings(s)
    tset = features_from_samples([baseline.batch], spec, feature_order=ORDER)
    result = fit(PCA, tset, PcaSettings.model_validate({"quantile": 0.995, "var": 0.9}))
    manifest = build_manifest("press-pca", tset, result, spec, s, ["simulator seed 3"],
                              assets=[baseline.asset])
    reg = Registry(models_dir)
    pkg = reg.add(manifest, result.onnx, result.holdout)
    reg.validate("press-pca", pkg.version, max_false_alarm_rate=0.5)
    reg.promote("press-pca", pkg.version, force=True)
    return pkg.manifest


def score(models_dir: Path, run: Run, chunk: int = 400) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(insight rows, feature rows) of the stage run over ``run`` on the event clock."""

    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        out: list[Envelope] = []
        async def emit(env: Envelope) -> None:
            out.append(env)

        stage = InferenceStage(settings(models_dir), asyncio.Queue(), emit, make_runtime=onnx_runtime)
        for lo in range(0, run.batch.num_rows, chunk):
            stage._accept(Envelope("samples", run.batch.slice(lo, chunk), f"b{lo}"))
            await stage.tick()
        await stage.tick(FLUSH_US)
        insights = [r for e in out if e.kind == "insights" for r in e.batch.to_pylist()]
        features = [r for e in out if e.kind == "features" for r in e.batch.to_pylist()]
        return insights, features

    return asyncio.run(go())
