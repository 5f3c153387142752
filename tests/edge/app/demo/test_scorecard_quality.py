"""The scorecard counts raised data-quality findings: as detections of the faults they overlap (with their
own detector), as false alarms where they overlap none."""

from __future__ import annotations

from edge.app.demo.scorecard import FaultSpan, QualityFinding, score, table
from tests.edge.app.demo.test_scorecard import at, consistent, windows


def finding(equipment: str, start_s: float, rule: str = "gap", signal: str = "current") -> QualityFinding:
    return QualityFinding(equipment, at(start_s), at(start_s + 10), rule, signal)


def test_a_gap_detects_a_dropout_the_model_could_not_see() -> None:
    faults = [FaultSpan("dropout", "line1.press1", at(60), at(80)),
              FaultSpan("overheating", "line2.press2", at(60), at(120))]
    rows = [*windows("line1.press1", "o" * 30, gated="o" * 12 + "gggg"),
            *windows("line2.press2", "o" * 14 + "aaaaaa" + "o" * 10)]
    card = score(faults, rows, [finding("line1.press1", 60)])
    consistent(card)
    assert card["faults_detected"] == 2
    dropout, overheating = card["faults"]
    assert (dropout["detected_by"], dropout["delay_s"], dropout["alarm_windows"]) == ("data_quality", 10.0, 0)
    assert dropout["quality_findings"] == [{"rule": "gap", "signal": "current",
                                            "window_end": at(70).isoformat()}]
    assert (overheating["detected_by"], overheating["delay_s"]) == ("model", 20.0)
    assert card["median_delay_s"] == 15.0
    assert card["false_alarms"]["total"] == 0 and card["false_alarms"]["episodes_during_faults"] == 2
    text = "\n".join(table(card))
    assert "2 of 2 injected faults detected" in text and "gap current" in text


def test_the_earlier_of_model_and_data_quality_is_the_detection() -> None:
    faults = [FaultSpan("stuck_sensor", "line1.press2", at(100), at(140))]
    rows = windows("line1.press2", "o" * 22 + "aaaa")  # first alarm window 110-120 s
    card = score(faults, rows, [finding("line1.press2", 100, "flatline", "temperature")])
    consistent(card)
    f = card["faults"][0]
    assert (f["detected_by"], f["delay_s"]) == ("data_quality", 10.0)  # 100-110 s, before the alarm


def test_findings_outside_faults_are_false_alarms() -> None:
    faults = [FaultSpan("spikes", "line1.press1", at(100), at(120))]
    rows = windows("line1.press1", "o" * 40)
    found = [finding("line2.press3", 20), finding("line1.press1", 170, "flatline", "pressure"),
             finding("line1.press1", 110)]
    card = score(faults, rows, found)
    consistent(card)
    fa = card["false_alarms"]
    assert (fa["before_first_fault"], fa["between_faults"], fa["total"]) == (1, 1, 2)
    assert fa["by_detector"] == {"model": 0, "data_quality": 2}
    assert fa["by_equipment"] == {"line1.press1": {"before_first_fault": 0, "between_faults": 1},
                                  "line2.press3": {"before_first_fault": 1, "between_faults": 0}}
    assert card["faults"][0]["detected_by"] == "data_quality"  # the one during the spikes counts for them
    assert card["warnings"]["by_detector"] == {"model": 0, "data_quality": 0}
