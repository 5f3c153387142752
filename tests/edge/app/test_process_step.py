"""The process stage never loses a batch: one its gate or contextualizer raises on becomes dead letters,
acknowledged, and the stream goes on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pyarrow as pa

from contextualize.enrich import Contextualizer
from edge.app.config import load_config
from edge.app.pipeline import ProcessStep
from edge.core.envelope import Envelope
from edge.core.metrics import Metrics
from edge.core.stages import TransformStage, queue_emit
from ingest.gate import QualityGate

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware-config"


def _step(metrics: Metrics) -> ProcessStep:
    config = load_config(FIRMWARE, "demo-box").config
    contextualizer = Contextualizer.from_settings(config.assets, config.quality.unmapped)
    gate = QualityGate(config.quality, contextualizer.model.raw_valid_ranges())
    return ProcessStep(gate, contextualizer, metrics)


def _batch_without_quality(tags: list[str]) -> pa.RecordBatch:
    """A samples batch a broken source might hand over: the quality and flags columns are missing."""
    now = time.time_ns() // 1000
    return pa.RecordBatch.from_pydict({
        "ts": pa.array([now] * len(tags), pa.timestamp("us", tz="UTC")),
        "recv_ts": pa.array([now] * len(tags), pa.timestamp("us", tz="UTC")),
        "tag": pa.array(tags).dictionary_encode(),
        "value": pa.array([1.5] * len(tags)),
        "source": pa.array(["broken"] * len(tags)).dictionary_encode(),
    })


async def test_a_batch_the_gate_raises_on_is_dead_lettered_and_acknowledged() -> None:
    metrics = Metrics()
    step = _step(metrics)
    inbox: asyncio.Queue[Envelope] = asyncio.Queue()
    out: asyncio.Queue[Envelope] = asyncio.Queue()
    stage = TransformStage("process", inbox, step, queue_emit(out), on_error=step.dead_letter)
    acked: list[str] = []
    await inbox.put(Envelope("samples", _batch_without_quality(["line1.press1.temp", "x"]), "b1",
                             [lambda: acked.append("b1")]))
    task = asyncio.create_task(stage.run())
    dead = await asyncio.wait_for(out.get(), 10)
    await stage.stop()
    await asyncio.wait_for(task, 10)

    assert dead.kind == "dead_letters" and dead.num_rows == 2
    assert set(dead.batch.column("reason").to_pylist()) == {"process_error"}
    detail = dead.batch.column("detail").to_pylist()[0]
    assert "flags" in detail  # the error names what was wrong: the first missing column
    assert dead.batch.column("tag").to_pylist() == ["line1.press1.temp", "x"]
    assert acked == []  # acknowledged only once the dead letters are stored
    dead.acknowledge()
    assert acked == ["b1"]
    assert metrics.get("ingest", "rejected", reason="process_error") == 2
    assert out.empty()


def test_without_the_error_path_the_batch_would_vanish() -> None:
    """The same batch through the step alone raises: the stage's error path is what keeps it."""
    step = _step(Metrics())
    try:
        step(Envelope("samples", _batch_without_quality(["x"]), "b2"))
    except Exception as exc:
        assert "flags" in str(exc)
    else:
        raise AssertionError("the gate accepted a batch without a quality column")
