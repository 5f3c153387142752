"""The plant simulator's samples as the inference stage gets them: CONTEXTUALIZED_SAMPLES of the chosen
machines, with the product the plant makes at each sample (``PlantConfig.products``) as MES context, and the
stage run over them on the event clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from edge.core.datamodel import CONTEXTUALIZED_SAMPLES
from edge.core.envelope import Envelope
from edge.simulator.plant import Plant
from inference.settings import InferenceSettings
from inference.stage import FLUSH_US, InferenceStage

T0_US = 1_764_000_000_000_000


def contextualized(plant: Plant, ticks: int, machines: Sequence[str]) -> pa.RecordBatch:
    """``ticks`` ticks of ``machines`` with asset, measure, unit and the product of the moment."""
    tags = {t.name: t for t in plant.tags}
    cols: dict[str, list[Any]] = {f.name: [] for f in CONTEXTUALIZED_SAMPLES}
    for _ in range(ticks):
        t_s = plant.t_s
        product = plant.product_at(t_s) or "P-1"
        ts, names, values = next(plant.samples(1))
        for t_us, name, value in zip(ts.tolist(), names.tolist(), values.tolist(), strict=True):
            tag = tags[name]
            if tag.machine not in machines:
                continue
            for key, v in (("ts", t_us), ("recv_ts", t_us), ("tag", name), ("value", value), ("quality", 0),
                           ("flags", 0), ("source", "sim"), ("asset", tag.asset), ("measure", tag.measure),
                           ("unit", tag.unit), ("work_order", f"WO-{product}"), ("product", product),
                           ("batch", "B-1"), ("shift", "A")):
                cols[key].append(v)
    return pa.RecordBatch.from_pydict(cols, schema=CONTEXTUALIZED_SAMPLES)


def run_stage(settings: InferenceSettings, batch: pa.RecordBatch, *, models: Sequence[Any] = (),
              make_runtime: Any = None, chunk: int = 400) -> list[Envelope]:
    """Every Envelope the stage emits over ``batch`` (fed in chunks, a tick after each, then flushed)."""

    async def go() -> list[Envelope]:
        out: list[Envelope] = []

        async def emit(env: Envelope) -> None:
            out.append(env)

        stage = InferenceStage(settings, asyncio.Queue(), emit,
                               models=None if make_runtime else list(models), make_runtime=make_runtime)
        for lo in range(0, batch.num_rows, chunk):
            stage._accept(Envelope("samples", batch.slice(lo, chunk), f"b{lo}"))
            await stage.tick()
        await stage.tick(FLUSH_US)
        return out

    return asyncio.run(go())


def rows(envelopes: Sequence[Envelope], kind: str) -> list[dict[str, Any]]:
    return [r for e in envelopes if e.kind == kind for r in e.batch.to_pylist()]
