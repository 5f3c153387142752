"""The demo's scorecard on hand-made fault schedules and insight rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edge.app.demo.report import _machine
from edge.app.demo.scorecard import FaultSpan, InsightRow, score, table

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def windows(equipment: str, severities: str, *, start_s: float = 0.0, hop_s: float = 5.0,
            window_s: float = 10.0, gated: str = "") -> list[InsightRow]:
    """One insight per hop: severities as letters, o(k) w(arning) a(larm); gated as 'g' at positions."""
    names = {"o": "ok", "w": "warning", "a": "alarm"}
    return [InsightRow(equipment, at(start_s + i * hop_s), at(start_s + i * hop_s + window_s), names[c],
                       gated=i < len(gated) and gated[i] == "g")
            for i, c in enumerate(severities)]


def consistent(card: dict[str, Any]) -> None:
    assert card["faults_detected"] + card["faults_missed"] == card["faults_injected"] == len(card["faults"])
    assert sum(f["detected"] for f in card["faults"]) == card["faults_detected"]
    for part in ("false_alarms", "warnings"):
        c = card[part]
        assert c["total"] == c["before_first_fault"] + c["between_faults"]
        assert c["total"] == sum(sum(n.values()) for n in c["by_equipment"].values())


def test_a_detected_fault_and_its_delay() -> None:
    faults = [FaultSpan("overheating", "line1.press2", at(60), at(120))]
    rows = windows("line1.press2", "o" * 12 + "wwaaaaaaaaaaaaa" + "oooo")  # alarms from window 14 (70-80 s)
    card = score(faults, rows)
    consistent(card)
    assert card["faults_detected"] == 1 and card["faults_missed"] == 0
    f = card["faults"][0]
    assert f["detected"] and f["delay_s"] == 20.0  # first alarm window ends at 80 s, fault began at 60 s
    assert card["median_delay_s"] == 20.0
    assert card["false_alarms"]["total"] == 0
    assert card["false_alarms"]["episodes_during_faults"] == 1
    assert card["warnings"]["total"] == 0 and card["warnings"]["episodes_during_faults"] == 1
    assert card["scored_from"] == T0.isoformat()


def test_a_missed_fault_and_false_alarms_before_and_between() -> None:
    faults = [FaultSpan("spikes", "line1.press1", at(100), at(130)),
              FaultSpan("stuck_sensor", "line2.press3", at(200), at(230))]
    rows = [
        *windows("line1.press1", "o" * 40),                       # spikes never flagged
        *windows("line2.press1", "ooaaoooooooooooooooooooooooooooooooooaaoo"),  # 10-25 s and 185-200 s
        *windows("line2.press3", "o" * 40),
    ]
    card = score(faults, rows)
    consistent(card)
    assert card["faults_detected"] == 0 and card["faults_missed"] == 2 and card["median_delay_s"] is None
    assert [f["delay_s"] for f in card["faults"]] == [None, None]
    fa = card["false_alarms"]
    assert (fa["before_first_fault"], fa["between_faults"]) == (1, 1)
    assert fa["by_equipment"] == {"line2.press1": {"before_first_fault": 1, "between_faults": 1}}


def test_an_alarm_on_another_machine_during_a_fault_is_false() -> None:
    faults = [FaultSpan("bearing_wear", "line1.press3", at(0), at(100))]
    rows = [*windows("line1.press3", "ooaaaaaaaaaaaaaaaaa"), *windows("line1.press1", "oooooaaooo")]
    card = score(faults, rows)
    consistent(card)
    assert card["faults_detected"] == 1 and card["false_alarms"]["between_faults"] == 1


def test_grace_after_the_end_counts_as_detection_not_false_alarm() -> None:
    faults = [FaultSpan("spikes", "line1.press2", at(50), at(60))]
    late = windows("line1.press2", "o" * 13 + "aa" + "o" * 5)  # alarm window 65-75 s: after the end
    card = score(faults, late, grace_s=15.0)
    consistent(card)
    assert card["faults"][0]["detected"] and card["faults"][0]["delay_s"] == 25.0
    assert card["false_alarms"]["total"] == 0
    strict = score(faults, late, grace_s=0.0)
    consistent(strict)
    assert not strict["faults"][0]["detected"] and strict["false_alarms"]["between_faults"] == 1


def test_one_episode_per_rising_edge_and_warnings_apart() -> None:
    rows = windows("line2.press2", "owwoaaoaaowaawo")  # warning episodes: 1, 10; alarm episodes: 4, 7, 11
    card = score([], rows)
    consistent(card)
    assert card["false_alarms"]["before_first_fault"] == 3  # no fault at all: everything is "before"
    assert card["warnings"]["total"] == 2  # the warning after an alarm is no new warning episode
    assert card["faults_injected"] == 0 and card["first_fault"] is None


def test_held_back_windows_and_plant_wide_faults() -> None:
    faults = [FaultSpan("dropout", "line1.press1", at(20), at(40)),
              FaultSpan("server_restart", "", at(50), at(55))]
    rows = windows("line1.press1", "oooooooooo", gated="oooggggooo")
    card = score(faults, rows)
    consistent(card)
    assert card["faults_injected"] == 1 and card["faults"][0]["held_back_windows"] == 4
    assert card["faults"][0]["detected"] is False
    assert card["not_scored"] == [{"kind": "server_restart", "start": at(50).isoformat(),
                                   "end": at(55).isoformat()}]
    text = "\n".join(table(card))
    assert "0 of 1 injected faults detected" in text and "not scored (plant-wide): server_restart" in text


def test_empty_run() -> None:
    card = score([], [])
    consistent(card)
    assert card["insights"] == 0 and card["scored_from"] is None
    assert "0 of 0" in next(table(card))


@pytest.mark.parametrize(("asset", "machine"), [
    ("acme/plant1/packaging/line1/cell3/press3", "line1.press3"),
    ("acme/plant1/area1/line2/press1", "line2.press1"),
])
def test_insight_assets_map_to_simulator_machines(asset: str, machine: str) -> None:
    assert _machine(asset) == machine
