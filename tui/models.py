"""View models of the terminal UI: plain frozen dataclasses the screens render and the data layer fills.

Nothing here touches the database or Textual, so screens and tests can build them freely.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


# Severity names the inference stage may use, ranked so the worst one wins. Unknown names rank as a warning.
SEVERITY_RANK: dict[str, int] = {
    "ok": 0,
    "normal": 0,
    "none": 0,
    "info": 1,
    "low": 1,
    "warning": 2,
    "warn": 2,
    "medium": 2,
    "high": 3,
    "alarm": 3,
    "critical": 4,
}
# What the severity filter steps through ("this or worse"); inference's levels are ok, warning, alarm.
SEVERITY_FILTERS: tuple[str | None, ...] = (None, "info", "warning", "alarm")


def severity_rank(severity: str | None) -> int:
    if severity is None:
        return -1
    return SEVERITY_RANK.get(severity.lower(), 2)


class FeedbackAction(enum.StrEnum):
    """What an operator says about an insight. Labels feed retraining; an ack only says "seen"."""

    ACK = "ack"
    TRUE_FAULT = "true_fault"
    FALSE_ALARM = "false_alarm"


@dataclass(frozen=True)
class AssetState:
    """One equipment at a glance: its worst recent news, how good its data is, how fresh."""

    path: str  # ISA-95 path: enterprise/site/area/line/cell/equipment
    severity: str | None = None  # of the latest insight
    insight_ts: datetime | None = None
    good_fraction: float | None = None  # share of recent samples with good quality and no flags
    last_ts: datetime | None = None  # newest sample

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Overview:
    assets: tuple[AssetState, ...]


@dataclass(frozen=True)
class TagSeries:
    tag: str
    measure: str | None
    unit: str | None
    values: tuple[float, ...]  # oldest first
    last_value: float | None
    last_ts: datetime | None
    last_quality: int


@dataclass(frozen=True)
class MesContext:
    work_order: str | None = None
    product: str | None = None
    batch: str | None = None
    shift: str | None = None
    since: datetime | None = None  # ts of the sample it was read from


@dataclass(frozen=True)
class InsightRow:
    insight_id: str
    ts: datetime
    asset: str
    model: str
    model_version: str
    model_sha256: str
    score: float | None
    threshold: float
    severity: str
    top_features: str = ""  # short text: "vib_rms 0.61, temp_mean 0.22"
    feedback: str | None = None  # latest operator action on it, if any
    feedback_by: str | None = None
    gated: bool = False  # built on bad or missing input: its severity only carries the last trusted level
    suppressed: bool = False  # a repeat of an alarm labelled false: stored, not sent to MES


@dataclass(frozen=True)
class InsightFilter:
    severity: str | None = None  # this severity or worse
    asset: str | None = None  # substring of the asset path
    model: str | None = None  # substring of the model name
    since_s: float | None = None  # only the last since_s seconds (":since 2h")


@dataclass(frozen=True)
class EquipmentDetail:
    asset: str
    tags: tuple[TagSeries, ...]
    features: tuple[tuple[str, float | None], ...]
    features_window_end: datetime | None
    context: MesContext
    insights: tuple[InsightRow, ...]


@dataclass(frozen=True)
class ModelRow:
    asset: str
    model: str
    model_version: str
    model_sha256: str
    runtime: str | None
    last_ts: datetime | None
    scores: tuple[float, ...]  # oldest first
    threshold: float | None
    over_threshold: int


@dataclass(frozen=True)
class StageRate:
    stage: str
    per_s: float | None
    lag_s: float | None


@dataclass(frozen=True)
class ConnectionState:
    name: str
    state: str  # "up", "down", or what the source said
    since: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class DeadLetterRow:
    ts: datetime
    source: str
    tag: str | None
    reason: str
    detail: str | None


@dataclass(frozen=True)
class Health:
    stages: tuple[StageRate, ...]
    spool_depth: int | None
    connections: tuple[ConnectionState, ...]
    dead_letter_reasons: tuple[tuple[str, int], ...]
    dead_letters: tuple[DeadLetterRow, ...]
    metrics: tuple[tuple[str, float], ...] = field(default=())


@dataclass(frozen=True)
class Feedback:
    insight_id: str
    action: FeedbackAction
    who: str
    comment: str = ""
    asset: str | None = None
    suppress_hours: float | None = None  # false_alarm only: suppress repeats this long


@dataclass(frozen=True)
class LabelCounts:
    true_faults: int = 0
    false_alarms: int = 0
    acks: int = 0
    suppressions: int = 0  # active now


@dataclass(frozen=True)
class SuppressionRow:
    id: int
    asset: str
    model: str
    features: tuple[str, ...]
    starts_at: datetime
    until: datetime
    who: str
    comment: str
    suppressed: int  # insights it has kept from MES


@dataclass(frozen=True)
class RetrainRow:
    """One retraining run as ``model_retrains_latest`` (migration 0047) has it now: its latest state."""

    run_id: str
    model: str
    scope: str
    trigger: str
    who: str | None
    started: datetime
    state: str  # running, done, failed
    updated: datetime
    since: datetime | None  # the lookback window trained on
    until: datetime | None
    windows: int | None  # good windows used, once done
    version: str | None  # the candidate, once done
    based_on: str | None
    seconds: float | None
    error: str | None
