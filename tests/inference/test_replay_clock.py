"""History replayed through the real quality gate and inference stage: with ``quality.accept_past`` and
``inference.clock = "event"`` every window of old data is scored; with the live settings the late samples
are counted in metrics and logged, not silently lost."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pyarrow as pa
import pytest

from edge.core.envelope import Envelope
from edge.core.metrics import METRICS
from inference.settings import InferenceSettings
from inference.stage import InferenceStage
from inference.training_set import features_from_samples, samples_batch
from inference.windows import WindowSpec
from ingest.gate import QualityGate
from ingest.settings import QualitySettings

T0_US = 1_577_836_800_000_000  # 2020-01-01: years older than quality.max_past_s


def history(n_s: int = 600) -> pa.RecordBatch:
    rng = np.random.default_rng(0)
    ts = T0_US + np.arange(n_s, dtype=np.int64) * 1_000_000
    return samples_batch(ts, {"a": rng.normal(size=n_s), "b": rng.normal(size=n_s)}, "eq/A")


def replay(settings: InferenceSettings, batch: pa.RecordBatch, chunk: int = 40) -> tuple[int, InferenceStage]:
    """Feed the batch in chunks with a stage tick after each (a paced replay), then stop: windows scored."""

    async def go() -> tuple[int, InferenceStage]:
        stage = InferenceStage(settings, asyncio.Queue(), lambda _e: None, models=[])
        n = 0
        for lo in range(0, batch.num_rows, chunk):
            stage._accept(Envelope("samples", batch.slice(lo, chunk), f"b{lo}"))
            res = await stage.tick()
            n += 0 if res.features is None else res.features.num_rows
        res = await stage.tick(2**62 if settings.clock == "event" else None)  # what run() does at stop
        return n + (0 if res.features is None else res.features.num_rows), stage

    return asyncio.run(go())


def test_gate_accepts_history_only_when_told() -> None:
    batch = history()
    now = int(time.time() * 1e6)
    kept, dead = QualityGate(QualitySettings()).apply(batch, now)
    assert kept.num_rows == 0 and dead.num_rows == batch.num_rows
    kept, dead = QualityGate(QualitySettings(accept_past=True)).apply(batch, now)
    assert kept.num_rows == batch.num_rows and dead.num_rows == 0


def test_event_clock_scores_every_window_of_old_data() -> None:
    settings = InferenceSettings(clock="event", models_dir="/nonexistent")
    kept, _ = QualityGate(QualitySettings(accept_past=True)).apply(history(), int(time.time() * 1e6))
    n, stage = replay(settings, kept)
    offline = features_from_samples([kept], WindowSpec.from_settings(settings), keep_gated=True)
    assert n == len(offline.window_start_us) >= 115
    assert stage.windower.late_dropped == 0 and stage.stats["late_dropped"] == 0


def test_wall_clock_on_old_data_counts_and_logs_late_samples(caplog: pytest.LogCaptureFixture) -> None:
    before = METRICS.get("inference", "late_dropped")
    with caplog.at_level(logging.WARNING, logger="inference.stage"):
        n, stage = replay(InferenceSettings(models_dir="/nonexistent"), history())
    dropped = stage.windower.late_dropped
    assert dropped > 0 and n < 115
    assert METRICS.get("inference", "late_dropped") - before == dropped == stage.stats["late_dropped"]
    warnings = [r for r in caplog.records if "late samples dropped" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited: once a minute however many ticks dropped samples
