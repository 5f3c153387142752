"""The Factory Edge terminal UI: ``EdgeTui(source)``, run by ``edge tui``.

Screens are Textual modes (1 overview, 2 insights, 3 models, 4 health); the equipment view is pushed over
the overview. Every read goes through a :class:`tui.data.DataSource` in workers; the only write is operator
feedback. ``clock`` is injectable so snapshots are deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from tui.data import DataSource, Unavailable
from tui.feedback import default_operator, validate
from tui.models import Clock, Feedback, FeedbackAction, InsightRow, system_clock
from tui.screens.base import EdgeScreen
from tui.screens.equipment import EquipmentScreen
from tui.screens.health import HealthScreen
from tui.screens.help import HelpScreen
from tui.screens.insights import InsightsScreen
from tui.screens.models import ModelsScreen
from tui.screens.overview import OverviewScreen
from tui.widgets.feedback_dialog import FeedbackDialog
from tui.widgets.status import StatusBar

THEMES = {"dark": "textual-dark", "light": "textual-light"}


class EdgeTui(App[None]):
    TITLE = "Factory Edge"
    CSS_PATH = "styles/app.tcss"
    MODES: ClassVar[dict[str, Any]] = {
        "overview": OverviewScreen,
        "insights": InsightsScreen,
        "models": ModelsScreen,
        "health": HealthScreen,
    }
    DEFAULT_MODE = "overview"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('overview')", "Overview"),
        Binding("2", "switch_mode('insights')", "Insights"),
        Binding("3", "switch_mode('models')", "Models"),
        Binding("4", "switch_mode('health')", "Health"),
        Binding("question_mark", "help", "Help"),
        Binding("r", "refresh_now", "Refresh", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        source: DataSource,
        *,
        clock: Clock = system_clock,
        operator: str | None = None,
        poll_s: float = 2.0,
        mqtt_url: str | None = None,
        stats_file: Path | None = None,
        metrics_url: str | None = None,
        theme: str = "dark",
        dsn_label: str = "",
    ) -> None:
        super().__init__()
        self.source = source
        self.clock = clock
        self.operator = operator or default_operator()
        self.poll_s = poll_s
        self.mqtt_url = mqtt_url
        self.stats_file = stats_file
        self.metrics_url = metrics_url
        self.dsn_label = dsn_label
        self.connected = False
        self.last_error: str | None = "connecting"
        self.updated: datetime | None = None
        self.broker_state = "unknown"
        self._last_query_error: str | None = None
        self.feedback_saved = 0  # count of feedback rows written (tests wait on it)
        self.theme = THEMES.get(theme, theme)

    def now(self) -> datetime:
        return self.clock()

    def on_mount(self) -> None:
        self.sub_title = self.dsn_label
        if self.mqtt_url is not None:
            self.probe_broker()
            self.set_interval(max(5.0, self.poll_s), self.probe_broker)

    async def on_unmount(self) -> None:
        await self.source.close()

    # --- connection state ------------------------------------------------------------------------------

    def note_ok(self) -> None:
        self.connected = True
        self.last_error = None
        self._last_query_error = None
        self.updated = self.now()

    def note_down(self, error: str) -> None:
        self.connected = False
        self.last_error = error

    def note_query_error(self, error: str) -> None:
        """Connected, but the historian refused a read (schema not there yet, a permission): say it once."""
        self.connected = True
        self.last_error = None
        if error != self._last_query_error:
            self.notify(f"historian: {error}", severity="error", timeout=10)
        self._last_query_error = error

    def render_status(self, bar: StatusBar) -> None:
        bar.show(connected=self.connected, error=self.last_error,
                 broker=self.broker_state if self.mqtt_url is not None else None,
                 updated=self.updated, operator=self.operator)

    @work(group="broker", exclusive=True, exit_on_error=False)
    async def probe_broker(self) -> None:
        """Is the MQTT broker reachable? A TCP connect bounded by one second, in a worker."""
        from edge.core.mqtt import BrokerAddress

        assert self.mqtt_url is not None
        try:
            address = BrokerAddress.parse(self.mqtt_url)
            _, writer = await asyncio.wait_for(asyncio.open_connection(address.host, address.port), 1.0)
            writer.close()
            self.broker_state = "up"
        except (OSError, TimeoutError, ValueError):
            self.broker_state = "down"

    # --- navigation ------------------------------------------------------------------------------------

    def open_equipment(self, asset: str) -> None:
        self.push_screen(EquipmentScreen(asset))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = THEMES["light"] if self.theme == THEMES["dark"] else THEMES["dark"]

    def action_refresh_now(self) -> None:
        if isinstance(self.screen, EdgeScreen):
            self.screen.poll()

    # --- the one write ---------------------------------------------------------------------------------

    def give_feedback(self, insight: InsightRow, action: FeedbackAction,
                      after: Callable[[], None] | None = None) -> None:
        """Ack at once; for a label, ask for a comment first. Saved in a worker, reported by a toast."""

        def save(comment: str | None) -> None:
            if comment is None:
                return
            fb = Feedback(insight.insight_id, action, self.operator, comment, insight.asset)
            self._save_feedback(fb, after)

        if action is FeedbackAction.ACK:
            save("")
        else:
            self.push_screen(FeedbackDialog(insight, action), save)

    @work(group="feedback", exit_on_error=False)
    async def _save_feedback(self, fb: Feedback, after: Callable[[], None] | None) -> None:
        try:
            fb = validate(fb)
            await self.source.record_feedback(fb)
        except (Unavailable, ValueError) as exc:
            self.notify(f"not saved: {exc}", severity="error", timeout=8)
            return
        self.feedback_saved += 1
        self.notify(f"{fb.action.value} saved for {fb.insight_id[:12]} by {fb.who}")
        if after is not None:
            after()
