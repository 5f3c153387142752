"""The promotion gate on replayed history (real PostgreSQL): a model whose false alarms lean on night shift
fails by the slice gap, a fair one passes by the numbers, and promotion rests on the stored gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.app.cli import main as edge_main
from edge.app.plugins import make_runtime
from inference.gate import GateBounds, run_gate
from inference.packages import PackageError, Registry
from tests.inference.lifecycle_history import (
    Fault,
    at,
    label,
    new_historian,
    settings_for,
    train_package,
    write_history,
)

ASSET = "acme/plant1/line1/press1"
HOURS = 3600.0


@pytest.fixture
def history(pg_dsn: str) -> str:
    new_historian(pg_dsn)
    # night shift: b 1.6 times as noisy; one true fault of 2 minutes at 2 h 30 in the gated period
    write_history(pg_dsn, ASSET, 4 * HOURS, seed=7, night_noise=1.6,
                  faults=[Fault(2.5 * HOURS, 2.5 * HOURS + 120, offset=5.0)])
    label(pg_dsn, ASSET, at(2.5 * HOURS), at(2.5 * HOURS + 120), "true_fault")
    label(pg_dsn, ASSET, at(3.2 * HOURS), at(3.2 * HOURS + 10), "false_alarm")
    return pg_dsn


def test_a_model_biased_by_shift_fails_and_a_fair_one_passes(history: str, tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    settings = settings_for(reg.root)
    # trained on day shift only: night's wider spread of b looks anomalous to it
    biased = train_package(reg, history, ASSET, at(0), at(2 * HOURS), shift="day", margin=1.5)
    fair = train_package(reg, history, ASSET, at(0), at(2 * HOURS), margin=1.5)

    res_b = run_gate(biased, history, [ASSET], at(2 * HOURS), at(4 * HOURS), settings, make_runtime)
    res_f = run_gate(fair, history, [ASSET], at(2 * HOURS), at(4 * HOURS), settings, make_runtime)

    night_b, day_b = (res_b["slices"]["shift"][k]["far"] for k in ("night", "day"))
    assert night_b >= 2 * max(day_b, GateBounds().far_floor), res_b["slices"]
    assert not res_b["passed"]
    # its overall rate is within the bound: the gap between shifts alone fails it
    assert res_b["false_alarm_rate"] <= GateBounds().max_far
    assert not any(r.startswith("false-alarm rate") for r in res_b["reasons"]), res_b["reasons"]
    assert any(r.startswith("FAR by shift: night") for r in res_b["reasons"]), res_b["reasons"]
    assert res_b["gaps"]["far_by_shift"]["highest"] == "night"

    assert res_f["passed"], res_f["reasons"]
    assert res_f["false_alarm_rate"] <= 0.05
    assert res_f["true_fault_periods"] == 1 and res_f["detected_periods"] == 1
    assert res_f["labelled_periods"] == 2
    assert res_f["false_alarm_rate_on_false_alarm_labels"] is not None
    assert set(res_f["slices"]["product"]) == {"P-100", "P-200"}
    # every slice and the whole are counted from the same windows
    assert sum(s["windows"] for s in res_f["slices"]["shift"].values()) == (
        res_f["windows"] - res_f["gated_windows"])


def test_gate_cli_stores_the_result_and_promotion_rests_on_it(
    history: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = Registry(tmp_path / "models")
    first = train_package(reg, history, ASSET, at(0), at(2 * HOURS), margin=1.5)
    biased = train_package(reg, history, ASSET, at(0), at(2 * HOURS), shift="day", margin=1.5)
    md = ["--models-dir", str(reg.root)]
    period = ["--since", at(2 * HOURS).isoformat(), "--until", at(4 * HOURS).isoformat(), "--dsn", history]

    assert edge_main(["models", "gate", "press", first.version, *period, *md, "--who", "ci"]) == 0
    assert "gate passed" in capsys.readouterr().out
    assert edge_main(["models", "promote", "press", first.version, "--reason", "first", *md]) == 0

    assert edge_main(["models", "gate", "press", biased.version, *period, *md]) == 1
    out = capsys.readouterr().out
    assert "gate FAILED" in out and "FAR by shift: night" in out
    with pytest.raises(PackageError, match="failed its promotion gate"):
        reg.promote("press", biased.version)
    assert reg.current() == {"press": first.version}
    assert edge_main(["models", "promote", "press", biased.version, *md]) == 1
    assert edge_main(["models", "promote", "press", biased.version, "--force", "--reason", "trial",
                      "--who", "bob", *md]) == 0
    assert reg.current() == {"press": biased.version}
    ev = reg.audit_log()[-1]
    assert ev["action"] == "promote" and ev["who"] == "bob" and ev["detail"]["forced"]
    assert ev["detail"]["basis"]["kind"] == "forced" and not ev["detail"]["basis"]["gate"]["passed"]
    gates = [e for e in reg.audit_log() if e["action"] == "gate"]
    assert (gates[0]["version"], gates[0]["detail"]["passed"], gates[0]["who"]) == (first.version, True, "ci")
    assert reg.gate_result("press", biased.version)["passed"] is False  # type: ignore[index]
