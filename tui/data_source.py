"""What the screens read, and the two ways a read can fail.

:class:`DataSource` is the protocol the screens and the app depend on;
:class:`tui.historian_source.HistorianSource` is the real one. :class:`Unavailable` means the historian cannot
answer now (the screens show "disconnected" and retry); :class:`QueryFailed` means it answered with an error
while the link itself is fine.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from edge.sinks.jetstream.fleet_table import BoxRow
from tui.alarm_models import AlarmDetail, ShiftReport
from tui.compare_view import CompareView
from tui.models import (
    EquipmentDetail,
    Feedback,
    Health,
    InsightFilter,
    InsightRow,
    LabelCounts,
    ModelRow,
    Overview,
    RetrainRow,
    SuppressionRow,
)


class Unavailable(Exception):
    """The historian cannot answer now (down, slow, refused); the UI shows it and tries again later."""


class QueryFailed(Unavailable):
    """The historian answered with an error (schema, permission, a refused write); the link itself is fine."""


class FleetUnavailable(Exception):
    """The site's NATS cluster cannot answer now, or no fleet is configured; the historian is not at fault."""


class DataSource(Protocol):
    """What the screens read. :class:`HistorianSource` is the real one."""

    @property
    def connected(self) -> bool: ...

    @property
    def last_error(self) -> str | None: ...

    async def overview(self, now: datetime) -> Overview: ...

    async def equipment(self, asset: str, now: datetime) -> EquipmentDetail: ...

    async def insights(self, flt: InsightFilter, now: datetime, limit: int = 200) -> list[InsightRow]: ...

    async def models(self, now: datetime) -> list[ModelRow]: ...

    async def label_counts(self, now: datetime) -> dict[tuple[str, str], LabelCounts]: ...

    async def model_compare(self, model: str, since: datetime, until: datetime) -> CompareView: ...

    async def active_suppressions(self, now: datetime) -> list[SuppressionRow]: ...

    async def lift_suppression(self, suppression_id: int, who: str, reason: str) -> None: ...

    async def retrains(self, now: datetime, limit: int = 5) -> list[RetrainRow]: ...

    async def health(self, now: datetime) -> Health: ...

    async def fleet(self, now: datetime) -> list[BoxRow]: ...

    async def alarm(self, insight_id: str) -> AlarmDetail: ...

    async def shift_report(self, line: str, day: date, shift: str | None = None) -> ShiftReport: ...

    async def record_feedback(self, fb: Feedback) -> int: ...

    async def close(self) -> None: ...
