"""The demo's own score: the insights stored during a run against the simulator's fault labels.

A pure function, :func:`score`, of the faults (equipment, kind, start, end) and the insight rows (equipment,
window, severity); :func:`table` renders it for the summary. The rules:

* a fault is **detected** when an insight of severity ``alarm`` on its equipment, or a raised data-quality
  finding on it (a ``data_quality`` event of ``inference.quality_watch``: a gap or a flatline of one of its
  signals), has a window that overlaps the fault's span extended by ``grace_s`` after its end; its **delay**
  is the end of the first such window (when it could be raised) minus the fault's start, never below 0, and
  ``detected_by`` says which came first (``model`` or ``data_quality``). A stuck sensor or a dropout is a
  fault of the data, not of the machine: the model's windows are gated then, the data-quality rules see it;
* an **alarm episode** is a rising edge: an ``alarm`` insight whose previous insight on the same equipment
  was not an alarm; every raised data-quality finding is an episode too. An episode is a **false alarm**
  when its window overlaps no fault span (+ grace) on that equipment; it is counted "before the first
  fault" when its window ends before the earliest fault of the whole schedule starts, else "between
  faults", and by detector (``model``, ``data_quality``);
* **warnings** are the same for episodes of severity ``warning`` (rising from ``ok``), counted apart;
* plant-wide faults (no equipment, e.g. ``server_restart``) are listed as not scored.

Scoring starts with the first insight (the model is live from then on) and ends with the last.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GRACE_S = 15.0


@dataclass(frozen=True)
class FaultSpan:
    kind: str
    equipment: str  # the simulator's machine name, "line1.press3"; "" for plant-wide faults
    start: datetime
    end: datetime


@dataclass(frozen=True)
class InsightRow:
    equipment: str
    window_start: datetime
    window_end: datetime
    severity: str  # ok | warning | alarm
    gated: bool = False


@dataclass(frozen=True)
class QualityFinding:
    """A raised data-quality finding (a gap or flatline episode of one signal) and the window raising it."""

    equipment: str
    window_start: datetime
    window_end: datetime
    rule: str  # gap | flatline
    signal: str


def _overlaps(row: InsightRow | QualityFinding, start: datetime, end: datetime) -> bool:
    return row.window_start <= end and row.window_end >= start


def _episodes(rows: Sequence[InsightRow], level: str) -> Iterator[InsightRow]:
    """The first row of each run of ``level`` per equipment (rows sorted by window start)."""
    previous: dict[str, str] = {}
    for row in rows:
        before = previous.get(row.equipment, "ok")
        if row.severity == level and before != level and not (level == "warning" and before == "alarm"):
            yield row
        previous[row.equipment] = row.severity


def score(faults: Iterable[FaultSpan], insights: Iterable[InsightRow],
          findings: Iterable[QualityFinding] = (), *, grace_s: float = GRACE_S) -> dict[str, Any]:
    """The scorecard (a JSON-ready dict; the fields are described in ``edge/app/demo/README.md``)."""
    from datetime import timedelta

    grace = timedelta(seconds=grace_s)
    rows = sorted(insights, key=lambda r: (r.window_start, r.equipment))
    found = sorted(findings, key=lambda r: (r.window_end, r.equipment))
    all_faults = sorted(faults, key=lambda f: f.start)
    scored = [f for f in all_faults if f.equipment]
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for f in scored:
        spans.setdefault(f.equipment, []).append((f.start, f.end + grace))
    first_fault = min((f.start for f in scored), default=None)

    per_fault: list[dict[str, Any]] = []
    for f in scored:
        on = [r for r in rows if r.equipment == f.equipment and _overlaps(r, f.start, f.end + grace)]
        alarms = [r for r in on if r.severity == "alarm"]
        dq = [q for q in found if q.equipment == f.equipment and _overlaps(q, f.start, f.end + grace)]
        first = min([(a.window_end, "model") for a in alarms[:1]] + [(q.window_end, "data_quality")
                                                                    for q in dq[:1]], default=None)
        delay = None if first is None else max(0.0, (first[0] - f.start).total_seconds())
        per_fault.append({
            "kind": f.kind, "equipment": f.equipment, "start": f.start.isoformat(), "end": f.end.isoformat(),
            "detected": first is not None, "delay_s": None if delay is None else round(delay, 1),
            "detected_by": None if first is None else first[1],
            "alarm_windows": len(alarms), "warning_windows": sum(r.severity == "warning" for r in on),
            "held_back_windows": sum(r.gated for r in on),
            "quality_findings": [{"rule": q.rule, "signal": q.signal, "window_end": q.window_end.isoformat()}
                                 for q in dq],
        })

    def outside(level: str) -> dict[str, Any]:
        counts = {"before_first_fault": 0, "between_faults": 0}
        by_equipment: dict[str, dict[str, int]] = {}
        by_detector = {"model": 0, "data_quality": 0}
        during = 0
        episodes: list[InsightRow | QualityFinding] = list(_episodes(rows, level))
        if level == "alarm":
            episodes += found
        for row in episodes:
            if any(_overlaps(row, s, e) for s, e in spans.get(row.equipment, ())):
                during += 1
                continue
            when = ("before_first_fault" if first_fault is None or row.window_end < first_fault
                    else "between_faults")
            counts[when] += 1
            by_detector["data_quality" if isinstance(row, QualityFinding) else "model"] += 1
            eq = by_equipment.setdefault(row.equipment, {"before_first_fault": 0, "between_faults": 0})
            eq[when] += 1
        return {"total": counts["before_first_fault"] + counts["between_faults"], **counts,
                "by_equipment": dict(sorted(by_equipment.items())), "by_detector": by_detector,
                "episodes_during_faults": during}

    delays = [f["delay_s"] for f in per_fault if f["delay_s"] is not None]
    detected = sum(f["detected"] for f in per_fault)
    return {
        "grace_s": grace_s,
        "scored_from": rows[0].window_start.isoformat() if rows else None,
        "scored_to": rows[-1].window_end.isoformat() if rows else None,
        "insights": len(rows),
        "first_fault": first_fault.isoformat() if first_fault else None,
        "faults_injected": len(per_fault),
        "faults_detected": detected,
        "faults_missed": len(per_fault) - detected,
        "median_delay_s": round(statistics.median(delays), 1) if delays else None,
        "faults": per_fault,
        "false_alarms": outside("alarm"),
        "warnings": outside("warning"),
        "not_scored": [{"kind": f.kind, "start": f.start.isoformat(), "end": f.end.isoformat()}
                       for f in all_faults if not f.equipment],
    }


def table(card: dict[str, Any]) -> Iterator[str]:
    """The scorecard as a few lines of text."""
    yield (f"scorecard: {card['faults_detected']} of {card['faults_injected']} injected faults detected, "
           f"median delay {_s(card['median_delay_s'])}; false alarms {card['false_alarms']['total']} "
           f"({card['false_alarms']['before_first_fault']} before the first fault, "
           f"{card['false_alarms']['between_faults']} between faults; "
           f"{card['false_alarms']['by_detector']['data_quality']} of them data quality); "
           f"warnings outside faults {card['warnings']['total']}")
    yield (f"  {'fault':<14} {'equipment':<14} {'detected':<9} {'by':<13} {'delay':>7} {'alarm win':>9} "
           f"{'held back':>9}  data quality")
    for f in card["faults"]:
        dq = ", ".join(sorted({f"{q['rule']} {q['signal']}" for q in f.get("quality_findings", [])})) or "-"
        yield (f"  {f['kind']:<14} {f['equipment']:<14} {'yes' if f['detected'] else 'NO':<9} "
               f"{f.get('detected_by') or '-':<13} {_s(f['delay_s']):>7} {f['alarm_windows']:>9} "
               f"{f['held_back_windows']:>9}  {dq}")
    for eq, n in card["false_alarms"]["by_equipment"].items():
        yield (f"  false alarms on {eq}: {n['before_first_fault']} before the first fault, "
               f"{n['between_faults']} between faults")
    for f in card["not_scored"]:
        yield f"  not scored (plant-wide): {f['kind']} at {f['start']}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"
