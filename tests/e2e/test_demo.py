"""End to end: ``edge demo --duration 30`` against the real PostgreSQL and Mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edge.app.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.wallclock
def test_demo_runs_30s_and_the_historian_holds_every_simulated_tag(
    tmp_path: Path, pg_dsn: str, mqtt_server_url: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge.app.cli", "--log-format", "json", "demo", "--duration", "30",
         "--historian-dsn", pg_dsn, "--mqtt-url", mqtt_server_url, "--data-dir", str(tmp_path / "demo"),
         "--baseline-minutes", "10", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
        env={"FE_DEMO_STATE": str(tmp_path / "demo.json"), "PATH": "/usr/bin:/bin:/usr/sbin"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "— summary —" in proc.stderr  # with --json the progress and summary lines go to stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    card = summary["scorecard"]
    assert_scorecard_consistent(card, labels=summary["labels"])
    assert card["insights"] > 0 and card["scored_from"] is not None
    # Faults begin only after the warm-up (20 s of a 30 s run), when the model is already scoring.
    assert card["first_fault"] is not None and card["first_fault"] > card["scored_from"]

    expected_tags = set(load_config(REPO / "firmware-config", "demo-box").config.assets.tags)
    with psycopg.connect(pg_dsn) as conn:
        per_tag: dict[str, int] = dict(
            conn.execute("SELECT tag, count(*) FROM samples GROUP BY tag").fetchall())
        insights = conn.execute("SELECT count(*), count(DISTINCT asset) FROM insights").fetchone()
        with_context = conn.execute(
            "SELECT count(*) FROM samples WHERE asset IS NOT NULL AND shift IS NOT NULL").fetchone()
        total = conn.execute("SELECT count(*) FROM samples").fetchone()
        stored = conn.execute("SELECT count(*) FROM insights").fetchone()
    assert set(per_tag) == expected_tags
    assert min(per_tag.values()) >= 100, proc.stdout[-3000:]  # 10 Hz for most of 30 s, every tag
    assert insights is not None and insights[0] > 0 and insights[1] == 6
    assert with_context is not None and total is not None and with_context[0] > 0.9 * total[0]
    assert stored is not None and card["insights"] == stored[0] == summary["historian_rows"]["insights"]
    assert not (tmp_path / "demo.json").exists()  # the state file for `edge tui` is removed on exit


def assert_scorecard_consistent(card: dict[str, Any], *, labels: list[dict[str, Any]]) -> None:
    """The scorecard's counts add up, and every labelled equipment fault is scored."""
    equipment_faults = [lb for lb in labels if lb.get("machine")]
    assert card["faults_injected"] == len(card["faults"]) == len(equipment_faults)
    assert card["faults_detected"] + card["faults_missed"] == card["faults_injected"]
    assert card["faults_detected"] == sum(f["detected"] for f in card["faults"])
    assert all((f["delay_s"] is None) == (not f["detected"]) for f in card["faults"])
    assert len(card["not_scored"]) == len(labels) - len(equipment_faults)
    for part in ("false_alarms", "warnings"):
        c = card[part]
        assert c["total"] == c["before_first_fault"] + c["between_faults"]
        assert c["total"] == sum(sum(n.values()) for n in c["by_equipment"].values())


@pytest.mark.wallclock
def test_a_short_seeded_demo_detects_every_fault_without_a_false_alarm(
    tmp_path: Path, pg_dsn: str, mqtt_server_url: str
) -> None:
    """90 s, seed 7: the auto schedule's five faults after a 20 s warm-up. The model sees the machine
    faults (bearing wear, overheating, spikes); the data-quality rules the stuck sensor and the dropout."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge.app.cli", "--log-format", "json", "demo", "--duration", "90",
         "--historian-dsn", pg_dsn, "--mqtt-url", mqtt_server_url, "--data-dir", str(tmp_path / "demo"),
         "--baseline-minutes", "10", "--seed", "7", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=400,
        env={"FE_DEMO_STATE": str(tmp_path / "demo.json"), "PATH": "/usr/bin:/bin:/usr/sbin"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    card = summary["scorecard"]
    assert_scorecard_consistent(card, labels=summary["labels"])
    kinds = {f["kind"]: f for f in card["faults"]}
    assert set(kinds) == {"bearing_wear", "overheating", "stuck_sensor", "spikes", "dropout"}
    assert card["faults_detected"] == 5, card["faults"]
    for k in ("stuck_sensor", "dropout"):  # over OPC-UA a stuck value is no data change: the tag goes silent
        assert [q["rule"] for q in kinds[k]["quality_findings"]] == ["gap"], kinds[k]
    assert card["median_delay_s"] is not None and card["median_delay_s"] > 0
    assert card["false_alarms"]["total"] == 0, card["false_alarms"]
    assert "5 of 5 injected faults detected" in proc.stderr
