"""View models of one alarm explained and of a shift report: frozen dataclasses, no database, no Textual.

The feature part comes from the insight's stored ``explanation`` (inference/explain); the rest is what the
historian shows around it when the alarm is looked at (:mod:`tui.explain_context`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from tui.models import InsightRow


@dataclass(frozen=True)
class ExplainedFeature:
    feature: str
    signal: str
    stat: str
    value: float
    unit: str | None = None
    baseline_mean: float | None = None
    baseline_sd: float | None = None
    deviation: float | None = None
    z: float | None = None
    contribution: float | None = None


@dataclass(frozen=True)
class AroundEvent:
    """Something that happened on the equipment or its line in the window or just before it."""

    ts: datetime
    kind: str  # "mes", "data_quality", "gated", "gap", "connection", "neighbour"
    text: str
    asset: str | None = None


@dataclass(frozen=True)
class SimilarCase:
    insight_id: str
    ts: datetime
    asset: str
    model: str
    severity: str
    distance: float  # 0 = the same contributions (cosine distance of the contribution vectors)
    label: str | None = None  # latest operator action: ack, true_fault, false_alarm
    who: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class SignalTrace:
    """One signal around the window: bucket averages, oldest first, and its training level if known."""

    signal: str
    unit: str | None
    times: tuple[datetime, ...]
    values: tuple[float, ...]
    band_mean: float | None = None
    band_sd: float | None = None


@dataclass(frozen=True)
class AlarmDetail:
    insight: InsightRow
    window_start: datetime
    window_end: datetime
    summary: str
    features: tuple[ExplainedFeature, ...]
    headline: tuple[str, ...]  # what the alarm follows (a product change, a data gap): said first
    around: tuple[AroundEvent, ...]
    similar: tuple[SimilarCase, ...]
    traces: tuple[SignalTrace, ...]
    context: dict[str, str | None] = field(default_factory=dict)
    gated: bool = False


@dataclass(frozen=True)
class EquipmentTally:
    asset: str
    alarms: int
    episodes: int
    true_faults: int
    false_alarms: int
    unlabelled: int


@dataclass(frozen=True)
class ContextChange:
    ts: datetime
    scope: str
    key: str
    value: str
    previous: str | None = None


@dataclass(frozen=True)
class ShiftReport:
    line: str
    day: date
    shift: str | None
    period_start: datetime
    period_end: datetime
    alarms: int  # alarm rows
    episodes: int  # alarm episodes (rising edges per equipment and model)
    warnings: int
    labels: dict[str, int]  # action -> alarms whose latest feedback is that action; "none": not looked at
    equipment: tuple[EquipmentTally, ...]  # most alarms first
    changes: tuple[ContextChange, ...]

    @property
    def false_alarm_rate(self) -> float | None:
        """False alarms over labelled alarms (true faults + false alarms); None when none is labelled."""
        labelled = self.labels.get("true_fault", 0) + self.labels.get("false_alarm", 0)
        return self.labels.get("false_alarm", 0) / labelled if labelled else None
