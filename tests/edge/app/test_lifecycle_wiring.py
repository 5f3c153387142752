"""The pipeline runs the model lifecycle manager when ``[inference.lifecycle] enabled``: on the pipeline's
historian and broker (overrides applied), fed with the inference stage's drift events; shadow insights go to
the historian only, never to the taps (JetStream) that MES reads."""

from __future__ import annotations

from pathlib import Path

from edge.app.config import AppConfig
from edge.app.pipeline import build_pipeline
from edge.core.datamodel import event_row, events_batch
from edge.core.envelope import Envelope
from edge.core.metrics import Metrics


def config(tmp_path: Path, enabled: bool) -> AppConfig:
    return AppConfig.model_validate({
        "box": {"id": "wiring"}, "spool": {"dir": str(tmp_path / "spool")}, "metrics": {"enabled": False},
        "mes": {"enabled": False}, "historian": {"dsn": "postgresql://nobody@127.0.0.1:1/none"},
        "inference": {"models_dir": str(tmp_path / "models"), "lifecycle": {"enabled": enabled}},
    })


async def test_lifecycle_component_gets_the_drift_events(tmp_path: Path) -> None:
    dsn = "postgresql://edge@127.0.0.1:5432/override"
    pipeline = build_pipeline(config(tmp_path, True), historian_dsn=dsn, broker_url="mqtt://127.0.0.1:1999",
                              metrics=Metrics())
    component = pipeline.components["model-lifecycle"]
    assert component.manager.dsn == dsn
    assert component.manager.notifier.broker.url == "mqtt://127.0.0.1:1999"
    drift = {"model": "press", "drift": True, "features": [{"feature": "a__mean", "psi": 3.0, "ks": 0.8}]}
    batch = events_batch([event_row("drift", "drift of press started", drift, source="inference"),
                          event_row("runtime", "model x", {"model": "x"}, source="inference")])
    await pipeline.components["inference"].emit(Envelope("events", batch, "b1"))
    assert [d["model"] for d in component.manager._drift_in] == ["press"]
    assert pipeline.q_hist.qsize() == 1  # and the events still go to the historian


def test_no_lifecycle_component_unless_enabled(tmp_path: Path) -> None:
    pipeline = build_pipeline(config(tmp_path, False), metrics=Metrics())
    assert "model-lifecycle" not in pipeline.components


async def test_shadow_insights_skip_the_taps_mes_reads(tmp_path: Path) -> None:
    from edge.core.datamodel import INSIGHTS, batch_from_rows
    from inference.shadow import with_role
    from tests.edge.sinks.outbox.test_publisher import insight_rows

    raw = config(tmp_path, False).model_dump()
    raw["jetstream"] = {"enabled": True, "servers": ["nats://127.0.0.1:4222"], "line": "line-1",
                        "ensure_streams": False}
    pipeline = build_pipeline(AppConfig.model_validate(raw), metrics=Metrics())
    tee = pipeline.components["tee"]
    hist, taps = tee.outs[0], tee.outs[1:]
    assert taps
    batch = batch_from_rows(insight_rows(["eq1"], 1), INSIGHTS)
    emit = pipeline.components["inference"].emit
    await emit(Envelope("insights", with_role(batch, "challenger"), "shadow"))
    assert hist.qsize() == 1 and pipeline.q_hist.qsize() == 0 and all(t.qsize() == 0 for t in taps)
    await emit(Envelope("insights", batch, "champion"))
    assert pipeline.q_hist.qsize() == 1  # through the tee: historian and taps
