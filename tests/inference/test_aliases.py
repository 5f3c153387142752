"""Champion and challenger aliases per scope: a schema-1 registry keeps working, every change is audited
with who, why and what it rested on, and the deployed models score the windows of their scope only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.app.cli import main as edge_main
from inference.aliases import deployments, in_scope, migrate_state
from inference.deploy import load_models
from inference.models.pca.kind import KIND as PCA_KIND
from inference.packages import PackageError, Registry
from inference.settings import InferenceSettings
from inference.train import fit
from tests.inference.test_packages import manifest_for, synthetic


def registry(tmp_path: Path, versions: int = 3) -> Registry:
    reg = Registry(tmp_path / "models")
    ts = synthetic()
    r = fit(PCA_KIND, ts)
    for _ in range(versions):
        reg.add(manifest_for(ts, r, name="m"), r.onnx, r.holdout)
    return reg


def test_schema_1_state_is_read_as_the_champion_of_all(tmp_path: Path) -> None:
    reg = registry(tmp_path, 2)
    (reg.root / "m" / "state.json").write_text(json.dumps(
        {"current": "2", "history": ["1", "2"], "validations": {"2": {"passed": True}}}))
    assert reg.current() == {"m": "2"}
    assert reg.deployments("m") == [("all", "champion", "2")]
    assert reg.package("m").version == "2"
    reg.rollback("m", reason="regression on line 1", who="anna")
    stored = json.loads((reg.root / "m" / "state.json").read_text())
    assert stored["schema"] == 2 and stored["aliases"] == {"all": {"champion": "1"}}
    assert stored["validations"] == {"2": {"passed": True}}
    assert migrate_state({"current": None, "history": []})["aliases"] == {}


def test_aliases_per_scope_audited_with_who_why_and_basis(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    reg.validate("m", "1", max_false_alarm_rate=1.0)
    reg.promote("m", "1", reason="first model", who="anna")
    ev = reg.set_alias("m", "2", "challenger", reason="shadow on line 1", scope="acme/line1", who="bob")
    assert ev["detail"] == {"role": "challenger", "scope": "acme/line1", "previous": None,
                            "reason": "shadow on line 1", "forced": False, "basis": None}
    with pytest.raises(PackageError, match="no passed promotion gate"):
        reg.set_alias("m", "2", "champion", scope="acme/line1", reason="x")
    with pytest.raises(PackageError, match="cannot also be"):
        reg.set_alias("m", "1", "challenger", reason="x")
    reg.record_gate("m", "2", {"passed": True, "reasons": [], "false_alarm_rate": 0.01})
    ev = reg.set_alias("m", "2", "champion", scope="acme/line1", reason="won the shadow run", who="bob")
    assert ev["detail"]["basis"] == {"kind": "gate", "passed": True, "reasons": [], "false_alarm_rate": 0.01,
                                     "ts": reg.gate_result("m", "2")["ts"]}  # type: ignore[index]
    # the winning challenger became the champion of its scope: no challenger left there
    assert reg.deployments("m") == [("acme/line1", "champion", "2"), ("all", "champion", "1")]
    first = next(e for e in reg.audit_log() if e["action"] == "promote")
    assert (first["action"], first["who"], first["detail"]["basis"]["kind"]) == ("promote", "anna",
                                                                                  "validation")
    assert [e["action"] for e in reg.audit_log()][-4:] == ["promote", "alias", "gate", "alias"]


def test_deployed_models_score_their_scope_only(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    reg.validate("m", "1", max_false_alarm_rate=1.0)
    reg.promote("m", "1")
    reg.record_gate("m", "2", {"passed": True, "reasons": []})
    reg.promote("m", "2", scope="acme/line1")
    reg.set_alias("m", "3", "challenger", scope="acme/line1/press1", reason="try")
    settings = InferenceSettings(models_dir=reg.root, providers=["CPUExecutionProvider"])
    from edge.app.plugins import make_runtime

    deployed = {(d.role, d.scope): d for d in load_models(settings, make_runtime=make_runtime)}
    assets = ["acme/line1/press1", "acme/line1/press2", "acme/line2/drill", "acme/line10/x"]
    rows = {k: d.rows_for(assets) for k, d in deployed.items()}
    assert np.array_equal(rows[("champion", "all")], [2, 3])  # line 1 has its own champion
    assert np.array_equal(rows[("champion", "acme/line1")], [0, 1])
    assert np.array_equal(rows[("challenger", "acme/line1/press1")], [0])
    assert deployed[("challenger", "acme/line1/press1")].package.version == "3"
    assert in_scope("all", "x") and not in_scope("acme/line1", "acme/line10/x")
    assert deployments(reg.state("m"))[0] == ("acme/line1/press1", "challenger", "3")


def test_alias_list_show_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = registry(tmp_path, 2)
    md = ["--models-dir", str(reg.root)]
    assert edge_main(["models", "alias", "m", "1", "champion", "--reason", "x", *md]) == 1
    assert "validation" in capsys.readouterr().err
    reg.validate("m", "1", max_false_alarm_rate=1.0)
    assert edge_main(["models", "alias", "m", "1", "champion", "--reason", "first", "--who", "ci", *md]) == 0
    assert edge_main(["models", "alias", "m", "2", "challenger", "--reason", "shadow", *md]) == 0
    assert edge_main(["models", "alias", "m", "2", "challenger", "--scope", " ", "--reason", "r", *md]) == 2
    capsys.readouterr()
    assert edge_main(["models", "list", "--json", *md]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["aliases"], r["current"], r["validated"], r["gate"]) for r in rows] == [
        ("1", ["champion@all"], True, True, None), ("2", ["challenger@all"], False, None, None)]
    assert edge_main(["models", "show", "m", "2", *md]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["aliases"] == {"all": {"champion": "1", "challenger": "2"}} and doc["gate"] is None
    assert edge_main(["models", "alias", "m", "-", "challenger", "--reason", "stop shadow", *md]) == 0
    assert reg.deployments("m") == [("all", "champion", "1")]
    assert reg.audit_log()[-1]["detail"]["previous"] == "2"
