"""Insights: hysteresis without flapping, quality gating, deterministic ids, MQTT topic and JSON payload,
and the inference stage end to end on an asyncio queue."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pyarrow as pa
import pytest

from edge.core.datamodel import EVENTS, INSIGHTS, features_schema
from edge.core.envelope import Envelope
from edge.sinks.outbox.encoder import insight_payloads, insight_topic, load_schema
from inference.idhash import insight_id
from inference.insights import build_insights
from inference.models.pca.kind import KIND as PCA
from inference.models.pca.settings import PcaSettings
from inference.packages import Registry
from inference.runtimes.onnx.runtime import build as onnx_runtime
from inference.settings import InferenceSettings
from inference.severity import SeverityTracker
from inference.stage import InferenceStage
from inference.train import fit
from inference.training_set import TrainingSet
from inference.windows import Window
from tests.inference.test_features_windows import T0, US, regular


def run(tracker: SeverityTracker, scores: list[float], gated: list[bool] | None = None) -> list[str]:
    g = gated or [False] * len(scores)
    return [tracker.update("eq", "m", s, 1.0, gg) for s, gg in zip(scores, g, strict=True)]


def test_hysteresis_needs_a_run_to_raise_and_to_clear() -> None:
    t = SeverityTracker(warning_ratio=0.8, clear_ratio=0.9, hysteresis_windows=2)
    assert run(t, [0.1, 1.5, 0.1, 1.5, 0.1]) == ["ok"] * 5  # single spikes never raise
    t = SeverityTracker(warning_ratio=0.8, clear_ratio=0.9, hysteresis_windows=2)
    assert run(t, [1.5, 1.5, 0.95, 1.2, 0.95, 0.5, 0.5, 0.5]) == [
        "ok",
        "alarm",
        "alarm",
        "alarm",
        "alarm",
        "alarm",
        "ok",
        "ok",
    ]


def test_no_flapping_around_the_threshold() -> None:
    t = SeverityTracker(hysteresis_windows=2)
    rng = np.random.default_rng(0)
    scores = [1.5, 1.5, *(1.0 + rng.uniform(-0.05, 0.05, 200))]  # wobbling at the threshold
    sev = run(t, scores)
    changes = sum(1 for a, b in itertools.pairwise(sev) if a != b)
    assert changes == 1 and sev[-1] == "alarm"


def test_warning_level() -> None:
    t = SeverityTracker(warning_ratio=0.8, hysteresis_windows=2)
    assert run(t, [0.85, 0.85, 0.85, 1.2, 1.2, 0.85, 0.85]) == [
        "ok",
        "warning",
        "warning",
        "warning",
        "alarm",
        "alarm",
        "warning",
    ]  # alarm clears to warning
    assert run(t, [0.1, 0.1]) == ["warning", "ok"]


def test_gated_windows_never_raise() -> None:
    t = SeverityTracker(hysteresis_windows=2)
    assert run(t, [5.0] * 6, [True] * 6) == ["ok"] * 6
    assert run(t, [5.0, 5.0, 5.0], [False, True, False]) == ["ok", "ok", "alarm"]
    assert run(t, [float("nan")] * 3) == ["alarm"] * 3  # not finite: gated, level held


def test_insight_id_is_deterministic() -> None:
    a = insight_id("m", "1", "eq", 10, 20)
    assert a == insight_id("m", "1", "eq", 10, 20)
    assert (
        len(
            {
                a,
                insight_id("m", "2", "eq", 10, 20),
                insight_id("m", "1", "eq2", 10, 20),
                insight_id("m", "1", "eq", 10, 21),
            }
        )
        == 4
    )


def _insights(n: int = 3) -> object:
    return build_insights(
        model="pump-pca",
        version="3",
        sha256="ab" * 32,
        threshold=1.0,
        feature_names=["a__mean", "b__rms"],
        assets=["site/area/line1/pump1"] * n,
        window_start_us=[T0 + i * 10 * US for i in range(n)],
        window_end_us=[T0 + (i + 1) * 10 * US for i in range(n)],
        scores=np.array([0.2, 3.0, float("nan")][:n]),
        contributions=np.array([[0.1, 0.05], [0.5, 2.5], [0, 0]][:n]),
        flags=[0, 0, 1 << 16][:n],
        gated=[False, False, True][:n],
        contexts=[{"work_order": "WO-7", "product": None}] * n,
        tracker=SeverityTracker(hysteresis_windows=1),
        k=2,
    )


def test_build_insights_rows() -> None:
    b = _insights()
    assert b.schema.equals(INSIGHTS)  # type: ignore[attr-defined]
    rows = b.to_pylist()  # type: ignore[attr-defined]
    assert [r["severity"] for r in rows] == ["ok", "alarm", "alarm"]
    assert rows[2]["score"] is None and rows[2]["gated"]
    assert json.loads(rows[1]["top_features"])[0] == {"feature": "b__rms", "contribution": 2.5}
    assert json.loads(rows[0]["context"]) == {"product": None, "work_order": "WO-7"}


def test_topic_and_payload_follow_the_schema() -> None:
    assert insight_topic("site/area/line1/pump1", "pump-pca") == "site/area/line1/pump1/_insights/pump-pca"
    assert insight_topic("/a/b/", "m+x", prefix="uns") == "uns/a/b/_insights/m_x"
    payloads = insight_payloads(_insights(), prefix="uns")  # type: ignore[arg-type]
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for topic, body in payloads:
        assert topic == "uns/site/area/line1/pump1/_insights/pump-pca"
        doc = json.loads(body)
        jsonschema.validate(doc, schema)
    last = json.loads(payloads[2][1])
    assert last["quality"] == {"flags": 65536, "names": ["LOW_COVERAGE"], "gated": True}
    assert last["window"]["end"].endswith("Z")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**json.loads(payloads[0][1]), "severity": "bad"}, schema)


def test_readme_example_is_valid() -> None:
    text = (Path(__file__).parents[2] / "inference" / "README.md").read_text()
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    jsonschema.validate(json.loads(block), load_schema())


# ---------------------------------------------------------------- the stage


def onnx_stage(*args: Any, **kw: Any) -> InferenceStage:
    """The stage loading its models from the registry onto ONNX Runtime in process."""
    return InferenceStage(*args, make_runtime=onnx_runtime, **kw)


def _registry_with_model(tmp_path: Path) -> InferenceSettings:
    """A model trained on the features the stage computes from ``regular`` samples (tags a, b)."""
    from inference.training_set import features_from_samples
    from inference.windows import WindowSpec

    settings = InferenceSettings.model_validate(
        {
            "window_s": 10,
            "hop_s": 10,
            "grid_hz": 1,
            "allowed_lateness_s": 0,
            "models_dir": str(tmp_path / "models"),
            "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
            "hysteresis_windows": 1,
            "idle_close_s": 3600,
        }
    )
    ts = features_from_samples([regular(3000)], WindowSpec.from_settings(settings))
    r = fit(PCA, TrainingSet(ts.feature_names, ts.x, ts.window_start_us), PcaSettings(quantile=0.999))
    reg = Registry(settings.models_dir)
    reg.add(
        {
            "name": "pump-pca",
            "kind": "pca",
            "features": ts.feature_names,
            "input": "features",
            "outputs": {"score": "score", "contributions": "contributions"},
            "threshold": r.threshold,
            "training": {},
            "metrics": r.metrics,
            "window": {"window_s": 10, "grid_hz": 1, "n_bands": 8},
        },
        r.onnx,
        r.holdout,
    )
    reg.validate("pump-pca", "1", max_false_alarm_rate=0.5)
    reg.promote("pump-pca", "1")
    return settings


async def test_stage_end_to_end(tmp_path: Path) -> None:
    settings = _registry_with_model(tmp_path)
    inbox: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=10)
    out: list[Envelope] = []

    async def emit(env: Envelope) -> None:
        out.append(env)

    stage = onnx_stage(settings, inbox, emit, clock=lambda: (T0 + 10**9 * US) / 1e6)
    assert stage.describe()[0]["runtime"]["providers_in_use"] == ["CPUExecutionProvider"]
    task = asyncio.create_task(stage.run())
    # two equipment; eq B runs far off its training distribution (value 50)
    await inbox.put(Envelope("samples", regular(41, asset="eq/A"), "b1"))
    await inbox.put(Envelope("samples", regular(41, asset="eq/B", value=50.0), "b2"))
    await stage.stop()
    await asyncio.wait_for(task, 60)
    kinds = [e.kind for e in out]
    assert kinds.count("features") == 1 and kinds.count("insights") == 1  # one tick, one model call
    feats = next(e for e in out if e.kind == "features")
    assert feats.batch.schema.names[:6] == features_schema([]).names
    ins = next(e for e in out if e.kind == "insights").batch.to_pylist()
    # 4 full windows per equipment, and the partial 5th closed by the idle rule at stop (gated)
    assert len(ins) == 10
    assert [r["gated"] for r in ins if r["asset"] == "eq/B"] == [False] * 4 + [True]
    sev = {a: [x["severity"] for x in ins if x["asset"] == a] for a in ("eq/A", "eq/B")}
    assert sev["eq/B"] == ["alarm"] * 5  # the gated window holds the level
    assert "alarm" not in sev["eq/A"]
    # replaying the same samples gives the same batch ids and insight ids
    out2: list[Envelope] = []
    stage2 = onnx_stage(settings, asyncio.Queue(), out2.append, clock=lambda: (T0 + 10**9 * US) / 1e6)
    stage2._accept(Envelope("samples", regular(41, asset="eq/A"), "b1"))
    stage2._accept(Envelope("samples", regular(41, asset="eq/B", value=50.0), "b2"))
    await stage2.tick()
    # (the first stage also emitted its start events, runtime per model and registry audit; tick() does not)
    ticked = [e for e in out if not (e.kind == "events" and
                                     set(e.batch.column("kind").to_pylist()) <= {"runtime", "audit"})]
    assert [e.batch_id for e in out2] == [e.batch_id for e in ticked]
    # insights leave before the features of the same tick (MES waits for them, nobody for the features)
    assert [e.kind for e in out2][:2] == ["insights", "features"]
    assert out2[0].batch.column("insight_id").to_pylist() == [r["insight_id"] for r in ins]


async def test_stage_runs_one_call_per_model_per_tick(tmp_path: Path) -> None:
    settings = _registry_with_model(tmp_path)
    stage = onnx_stage(settings, asyncio.Queue(), lambda e: None, clock=lambda: 0.0)
    calls: list[int] = []
    rt = stage.models[0].runtime
    real = rt.infer

    def counting(x: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(len(x))
        return real(x)

    rt.infer = counting
    for i in range(5):
        stage._accept(Envelope("samples", regular(31, asset=f"eq/{i}"), f"b{i}"))
    res = await stage.tick(now_us=T0)
    assert calls == [15] and res.insights[0][2].num_rows == 15


async def test_stage_gates_bad_windows_and_reports_missing_features(tmp_path: Path) -> None:
    settings = _registry_with_model(tmp_path)
    stage = onnx_stage(settings, asyncio.Queue(), lambda e: None, clock=lambda: 0.0)
    # equipment with only tag "a": the model's b__* features are missing -> gated, never alarm
    stage._accept(Envelope("samples", regular(31, tags=("a",), asset="eq/X", value=99.0), "x"))
    res = await stage.tick(now_us=T0)
    rows = res.insights[0][2].to_pylist()
    assert rows and all(r["gated"] and r["severity"] == "ok" for r in rows)
    assert all(r["quality_flags"] & (1 << 18) for r in rows)


async def test_stage_windows_off_the_event_loop(tmp_path: Path) -> None:
    """``Windower.add`` and ``Windower.ready`` run in worker threads, so the event loop keeps serving other
    coroutines during a heavy tick: here ``ready`` waits until a heartbeat coroutine has beaten twice more,
    which it can only do if the loop is free (on the loop thread it would wait out its 30 s and fail)."""
    settings = _registry_with_model(tmp_path)
    inbox: asyncio.Queue[Envelope] = asyncio.Queue()
    out: list[Envelope] = []
    stage = onnx_stage(settings, inbox, out.append, clock=lambda: (T0 + 10**9 * US) / 1e6)
    loop_thread = threading.get_ident()
    threads: dict[str, set[int]] = {"add": set(), "ready": set()}
    beats = 0
    progressed: list[int] = []
    real_add, real_ready = stage.windower.add, stage.windower.ready

    def add(batch: pa.RecordBatch) -> None:
        threads["add"].add(threading.get_ident())
        real_add(batch)

    def ready(now_us: int | None = None) -> list[Window]:
        threads["ready"].add(threading.get_ident())
        start, deadline = beats, time.monotonic() + 30
        while beats < start + 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        progressed.append(beats - start)
        return real_ready(now_us)

    stage.windower.add = add  # type: ignore[method-assign]
    stage.windower.ready = ready  # type: ignore[method-assign]

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0.001)

    hb = asyncio.create_task(heartbeat())
    task = asyncio.create_task(stage.run())
    await inbox.put(Envelope("samples", regular(41, asset="eq/A"), "b1"))
    await inbox.put(Envelope("samples", regular(41, asset="eq/B"), "b2"))
    await inbox.join()
    await stage.stop()
    await asyncio.wait_for(task, 120)
    hb.cancel()
    assert threads["add"] and loop_thread not in threads["add"]
    assert threads["ready"] and loop_thread not in threads["ready"]
    assert progressed and min(progressed) >= 2  # the loop ran the heartbeat while ready() was busy
    ins = [e for e in out if e.kind == "insights"]
    assert sum(e.num_rows for e in ins) == 10  # the windows closed as before: 5 per equipment


def test_events_batch_schema() -> None:
    from inference.stage_events import events_batch

    b = events_batch([("runtime", "fell back", {"model": "m"})], "inference")
    assert b.schema.equals(EVENTS)


def test_drift_monitor_raises_and_clears() -> None:
    from inference.drift import DriftMonitor

    rng = np.random.default_rng(0)
    train = rng.normal(size=5000)
    mon = DriftMonitor("m", list(np.quantile(train, np.linspace(0.1, 0.9, 9))), size=500, every=100)
    assert mon.update(rng.normal(size=1000)) == []
    events = mon.update(rng.normal(loc=1.5, size=500))
    assert len(events) == 1 and events[0]["drift"] is True and mon.drifting
    events = mon.update(rng.normal(size=1000))
    assert len(events) == 1 and events[0]["drift"] is False and not mon.drifting
