"""What every screen is given when it is made: where to read, what time it is, and the run's settings.

The app builds one :class:`ScreenContext` and hands it to each screen, so screens never import the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tui.data_source import DataSource
from tui.models import Clock


@dataclass
class ViewState:
    """What the ``:`` command line sets for every screen at once (``:since 2h``)."""

    since_s: float | None = None


@dataclass(frozen=True)
class ScreenContext:
    source: DataSource
    clock: Clock
    poll_s: float
    mqtt_url: str | None = None
    metrics_url: str | None = None
    stats_file: Path | None = None
    view: ViewState = field(default_factory=ViewState)

    def now(self) -> datetime:
        return self.clock()
