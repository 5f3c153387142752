"""The inference stage's start events: one ``runtime`` event per deployed model (what the TUI's models screen
shows) and the model registry's audit entries not emitted before, checked on the emitted Envelopes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from edge.core.datamodel import EVENTS
from edge.core.envelope import Envelope
from inference.packages import Registry
from inference.stage import InferenceStage
from tests.inference.test_insights import _registry_with_model, onnx_stage
from tui.historian_rows import runtime_label


async def _start(stage: InferenceStage) -> None:
    task = asyncio.create_task(stage.run())
    await stage.stop()
    await asyncio.wait_for(task, 60)


def _events(out: list[Envelope], kind: str) -> list[dict[str, object]]:
    rows = []
    for env in out:
        if env.kind == "events":
            assert env.batch.schema.equals(EVENTS)
            rows += [r for r in env.batch.to_pylist() if r["kind"] == kind]
    return rows


async def test_stage_start_emits_one_runtime_event_per_model(tmp_path: Path) -> None:
    settings = _registry_with_model(tmp_path)  # providers: CUDA, then CPU; no GPU here
    out: list[Envelope] = []
    stage = onnx_stage(settings, asyncio.Queue(), out.append, clock=lambda: 0.0)
    await _start(stage)
    rows = _events(out, "runtime")
    assert len(rows) == 1 and rows[0]["source"] == "inference"
    detail = json.loads(str(rows[0]["detail"]))
    pkg = Registry(settings.models_dir).package("pump-pca")
    assert detail == {
        "model": "pump-pca",
        "version": "1",
        "sha256": pkg.sha256,
        "runtime": "onnxruntime",
        "providers_requested": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "providers_in_use": ["CPUExecutionProvider"],
        "asset_scope": [],
    }
    assert runtime_label(detail) == "onnxruntime CPU"  # what the models screen shows
    assert "pump-pca v1 on onnxruntime (CPUExecutionProvider)" in str(rows[0]["message"])
    # the start events come before anything scored
    assert out[0].kind == "events" and out[0].batch.column("kind").to_pylist() == ["runtime"]


def _audit_ids(out: list[Envelope]) -> list[str]:
    return [e.batch_id for e in out if e.kind == "events" and "audit" in e.batch.column("kind").to_pylist()]


def _committing(out: list[Envelope]) -> Callable[[Envelope], None]:
    """An emit that stores and acknowledges, like the historian sink once a batch is committed."""

    def emit(env: Envelope) -> None:
        out.append(env)
        env.acknowledge()

    return emit


async def test_stage_start_emits_audit_entries_not_emitted_before(tmp_path: Path) -> None:
    settings = _registry_with_model(tmp_path)  # register, validate, promote
    lost: list[Envelope] = []
    await _start(onnx_stage(settings, asyncio.Queue(), lost.append, clock=lambda: 0.0))  # never committed
    out: list[Envelope] = []
    await _start(onnx_stage(settings, asyncio.Queue(), _committing(out), clock=lambda: 0.0))
    # the same entries again, with the same batch id: the historian stores them once
    assert _audit_ids(out) == _audit_ids(lost) and len(_audit_ids(out)) == 1
    audit = _events(out, "audit")
    assert [r["message"] for r in audit] == [
        "model pump-pca register v1",
        "model pump-pca validate v1",
        "model pump-pca promote v1",
    ]
    assert all(r["source"] == "inference.registry" for r in audit)
    assert json.loads(str(audit[1]["detail"]))["passed"] is True

    # a restart with nothing new in the registry: runtime again, no audit
    out2: list[Envelope] = []
    await _start(onnx_stage(settings, asyncio.Queue(), _committing(out2), clock=lambda: 0.0))
    assert _events(out2, "audit") == [] and len(_events(out2, "runtime")) == 1

    # a new registry action is emitted at the next start, alone
    Registry(settings.models_dir).validate("pump-pca", "1", max_false_alarm_rate=0.5)
    out3: list[Envelope] = []
    await _start(onnx_stage(settings, asyncio.Queue(), _committing(out3), clock=lambda: 0.0))
    assert [r["message"] for r in _events(out3, "audit")] == ["model pump-pca validate v1"]
    assert len(_audit_ids(out3)) == 1 and _audit_ids(out3) != _audit_ids(out)
