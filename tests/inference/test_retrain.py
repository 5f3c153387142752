"""Retraining from the historian (real PostgreSQL): true-fault periods left out, false-alarm periods kept,
training in a child process under its limits, the candidate as challenger; the label trigger and the
manual mode; lifecycle messages against their schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from edge.app.cli import main as edge_main
from edge.app.plugins import make_runtime, model_kind
from inference.lifecycle import from_audit, topic_of
from inference.lifecycle_manager import ModelLifecycle
from inference.packages import Registry
from inference.retrain import RetrainError, TrainingJob, fit_candidate, train_in_child
from inference.retrain_progress import latest
from inference.settings import InferenceSettings
from tests.inference.lifecycle_history import (
    Fault,
    at,
    label,
    new_historian,
    train_package,
    write_history,
)

ASSET = "acme/plant1/line1/press1"
H = 3600.0
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "inference" / "lifecycle.schema.json").read_text())


@pytest.fixture
def history(pg_dsn: str) -> str:
    new_historian(pg_dsn)
    write_history(pg_dsn, ASSET, 2 * H, seed=5, faults=[Fault(1.5 * H, 1.5 * H + 300, offset=5.0)])
    label(pg_dsn, ASSET, at(1.5 * H), at(1.5 * H + 300), "true_fault")
    label(pg_dsn, ASSET, at(1.2 * H), at(1.2 * H + 10), "false_alarm")
    return pg_dsn


def settings(tmp_path: Path, **life: object) -> InferenceSettings:
    return InferenceSettings.model_validate({
        "models_dir": str(tmp_path / "models"), "providers": ["CPUExecutionProvider"],
        "lifecycle": {"lookback_s": 2 * H, "min_good_windows": 200, **life}})


def test_retrain_cli_leaves_out_true_faults_and_sets_the_challenger(
    history: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = settings(tmp_path)
    reg = Registry(s.models_dir)
    v1 = train_package(reg, history, ASSET, at(0), at(H), settings=s)
    reg.validate("press", v1.version, max_false_alarm_rate=1.0)
    reg.promote("press", v1.version)
    assert edge_main(["models", "retrain", "press", "--dsn", history, "--until", at(2 * H).isoformat(),
                      "--models-dir", str(s.models_dir), "--who", "anna"]) == 0
    out = capsys.readouterr().out
    assert "1 true-fault periods left out, 1 false-alarm periods kept" in out
    assert reg.deployments("press") == [("all", "champion", "1"), ("all", "challenger", "2")]
    ev = next(e for e in reg.audit_log() if e["action"] == "retrain")
    assert ev["who"] == "anna" and ev["detail"]["based_on"] == "1"
    # its progress is in the historian, where `edge models list` and the TUI read it
    (run,) = latest(history)
    assert (run["state"], run["model"], run["version"], run["windows"], run["who"], run["based_on"]) == (
        "done", "press", "2", ev["detail"]["windows"], "anna", "1")
    assert run["until"] == at(2 * H) and run["started"] <= run["updated"]
    assert edge_main(["models", "list", "--dsn", history, "--models-dir", str(s.models_dir)]) == 0
    out = capsys.readouterr().out
    assert f"retrain press (all, manual) done since {run['started']:%Y-%m-%d %H:%M:%S}" in out
    assert f"v2 from {run['windows']} windows" in out
    cand = reg.package("press", "2")
    assert cand.manifest["assets"] == [ASSET] and "excluding 1 true-fault periods" in cand.manifest[
        "training"]["sources"][0]
    # the windows over the fault are not trained on: fewer windows than the same period with it
    job = TrainingJob("press", model_kind("pca"), {}, s.model_dump(mode="json"), history, [ASSET], at(0),
                      at(2 * H))
    with_fault = fit_candidate(job)[0]["training"]["windows_used"]
    assert ev["detail"]["windows"] <= with_fault - 300 / s.hop_s


def test_training_child_under_a_memory_limit_fails_cleanly(history: str, tmp_path: Path) -> None:
    s = settings(tmp_path)
    job = TrainingJob("press", model_kind("pca"), {}, s.model_dump(mode="json"), history, [ASSET], at(0),
                      at(2 * H), memory_mb=256)
    with pytest.raises(RetrainError, match="press"):
        train_in_child(job, timeout_s=120)


def test_false_alarm_labels_trigger_once_and_manual_mode_waits(history: str, tmp_path: Path) -> None:
    s = settings(tmp_path, false_alarm_labels=2, on_drift=False, min_interval_s=H, shadow_s=60)
    reg = Registry(s.models_dir)
    v1 = train_package(reg, history, ASSET, at(0), at(H), settings=s)
    reg.validate("press", v1.version, max_false_alarm_rate=1.0)
    reg.promote("press", v1.version)
    manager = ModelLifecycle(s, history, model_kind, make_runtime)
    assert manager.step(at(2 * H)) == []  # one false-alarm label so far
    label(history, ASSET, at(1.3 * H), at(1.3 * H + 10), "false_alarm")
    assert manager.step(at(2 * H)) == ["press: v2 retrained (2 false-alarm labels), in shadow"]
    # manual mode: the challenger waits for engineers, however long it has been in shadow
    assert manager.step(at(3 * H)) == []
    assert reg.deployments("press") == [("all", "champion", "1"), ("all", "challenger", "2")]
    reg.set_alias("press", None, "challenger", reason="engineers: not now")
    label(history, ASSET, at(1.4 * H), at(1.4 * H + 10), "false_alarm")
    assert manager.step(at(2 * H + 60)) == []  # within min_interval of the last retrain

    for entry in reg.audit_log():
        msg = from_audit(entry)
        if msg is not None:
            jsonschema.validate(msg, SCHEMA)
            assert topic_of("site1", msg) == "site1/_models/press/lifecycle"


def test_schedule_triggers_after_its_period(history: str, tmp_path: Path) -> None:
    s = settings(tmp_path, false_alarm_labels=0, on_drift=False, min_interval_s=0, schedule_s=H)
    reg = Registry(s.models_dir)
    v1 = train_package(reg, history, ASSET, at(0), at(H), settings=s)
    reg.validate("press", v1.version, max_false_alarm_rate=1.0)
    reg.promote("press", v1.version)
    manager = ModelLifecycle(s, history, model_kind, make_runtime)
    assert manager.step(at(1.2 * H)) == []  # the schedule counts from here
    assert manager.step(at(2 * H)) == []
    assert manager.step(at(2.2 * H)) == ["press: v2 retrained (schedule), in shadow"]


def test_a_candidate_is_featurized_by_its_champions_levels_mode(history: str, tmp_path: Path) -> None:
    """A champion trained with ``--levels none`` (or auto) is retrained under the same mode, decided again on
    the lookback's data, not with every level statistic back in."""
    s = settings(tmp_path)
    job = TrainingJob("press", model_kind("pca"), {}, s.model_dump(mode="json"), history, [ASSET], at(0),
                      at(H), levels="none")
    manifest = fit_candidate(job)[0]
    assert manifest["levels"]["mode"] == "none"
    stats = {n.rpartition("__")[2] for n in manifest["features"]}
    assert stats and not stats & {"mean", "rms", "min", "max"}
    default = fit_candidate(TrainingJob("press", model_kind("pca"), {}, s.model_dump(mode="json"), history,
                                        [ASSET], at(0), at(H)))[0]
    assert "mean" in {n.rpartition("__")[2] for n in default["features"]} and "levels" not in default
