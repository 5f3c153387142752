"""The Factory Edge terminal UI: ``EdgeTui(source)``, run by ``edge tui``.

Screens are Textual modes (1 overview, 2 insights, 3 models, 4 health); the equipment view is pushed over
the overview. Every read goes through a :class:`tui.data_source.DataSource` in workers; the only write is
operator feedback. ``clock`` is injectable so snapshots are deterministic.

Screens get a :class:`tui.context.ScreenContext` and talk back only through messages (:mod:`tui.messages`);
the connection state is the reactive ``link``, which every status bar watches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive

from tui.commands import Command, CommandError, find_asset, parse
from tui.context import ScreenContext
from tui.data_source import DataSource, Unavailable
from tui.feedback import default_operator, validate
from tui.link_state import LinkState
from tui.messages import (
    FeedbackRequested,
    HistorianAnswered,
    HistorianDown,
    HistorianRefused,
    LiftRequested,
    OpenAlarm,
    OpenEquipment,
)
from tui.models import Clock, Feedback, FeedbackAction, InsightRow, system_clock
from tui.screens.alarm import AlarmScreen
from tui.screens.base import EdgeScreen
from tui.screens.equipment import EquipmentScreen
from tui.screens.fleet import FleetScreen
from tui.screens.health import HealthScreen
from tui.screens.help import HelpScreen, HelpSection, as_bindings, screen_section
from tui.screens.insights import InsightsScreen
from tui.screens.models import ModelsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.report import ShiftReportScreen
from tui.widgets.command_line import CommandLine
from tui.widgets.feedback_dialog import FeedbackChoice, FeedbackDialog
from tui.widgets.lift_dialog import LiftDialog

THEMES = {"dark": "textual-dark", "light": "textual-light"}

# key -> mode -> screen; the key bindings, the modes and the help screen are all made from this
MODE_SCREENS: tuple[tuple[str, str, type[EdgeScreen]], ...] = (
    ("1", "overview", OverviewScreen),
    ("2", "insights", InsightsScreen),
    ("3", "models", ModelsScreen),
    ("4", "health", HealthScreen),
    ("5", "report", ShiftReportScreen),
    ("6", "fleet", FleetScreen),
)
PUSHED_SCREENS: tuple[tuple[str, type[EdgeScreen]], ...] = (
    ("enter on overview", EquipmentScreen),
    ("enter on an insight", AlarmScreen),
)


class EdgeTui(App[None]):
    TITLE = "Factory Edge"
    CSS_PATH = "styles/app.tcss"
    DEFAULT_MODE = "overview"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"switch_mode('{mode}')", screen.LABEL) for key, mode, screen in MODE_SCREENS),
        Binding("question_mark", "help", "Help", tooltip="this help (esc or ? closes it)"),
        Binding("colon", "command_line", ":cmd",
                tooltip="command line: :asset PATH, :since 2h, :label a|t|f [comment], :report, :help"),
        Binding("r", "refresh_now", "Refresh", show=False, tooltip="refresh now"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False, tooltip="light / dark theme"),
        Binding("q", "quit", "Quit", tooltip="quit"),
    ]

    link: reactive[LinkState] = reactive(LinkState)

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
        self.ctx = ScreenContext(source, clock, poll_s, mqtt_url, metrics_url, stats_file)
        self.operator = operator or default_operator()
        self.dsn_label = dsn_label
        self._last_query_error: str | None = None
        self.feedback_saved = 0  # count of feedback rows written (tests wait on it)
        self.suppressions_lifted = 0  # lifts done from the models screen (tests wait on it)
        self.commands_run = 0  # command lines parsed and started (tests wait on it)
        self.theme = THEMES.get(theme, theme)
        self.set_reactive(EdgeTui.link, LinkState(broker="unknown" if mqtt_url is not None else None,
                                                  operator=self.operator))
        for _, mode, screen in MODE_SCREENS:
            self.add_mode(mode, partial(screen, self.ctx))

    @property
    def connected(self) -> bool:
        return self.link.connected

    @property
    def last_error(self) -> str | None:
        return self.link.error

    def now(self) -> datetime:
        return self.ctx.now()

    def on_mount(self) -> None:
        self.sub_title = self.dsn_label
        if self.ctx.mqtt_url is not None:
            self.probe_broker()
            self.set_interval(max(5.0, self.ctx.poll_s), self.probe_broker)

    async def on_unmount(self) -> None:
        await self.source.close()

    # --- connection state: what the screens report -----------------------------------------------------

    @on(HistorianAnswered)
    def _answered(self) -> None:
        self._last_query_error = None
        self.link = replace(self.link, connected=True, error=None, updated=self.now())

    @on(HistorianDown)
    def _down(self, message: HistorianDown) -> None:
        self.link = replace(self.link, connected=False, error=message.reason)

    @on(HistorianRefused)
    def _refused(self, message: HistorianRefused) -> None:
        """Connected, but the historian refused a read (schema not there yet, a permission): say it once."""
        self.link = replace(self.link, connected=True, error=None)
        if message.reason != self._last_query_error:
            self.notify(f"historian: {message.reason}", severity="error", timeout=10)
        self._last_query_error = message.reason

    @work(group="broker", exclusive=True, exit_on_error=False)
    async def probe_broker(self) -> None:
        """Is the MQTT broker reachable? A TCP connect bounded by one second, in a worker."""
        from edge.core.mqtt import BrokerAddress

        assert self.ctx.mqtt_url is not None
        try:
            address = BrokerAddress.parse(self.ctx.mqtt_url)
            _, writer = await asyncio.wait_for(asyncio.open_connection(address.host, address.port), 1.0)
            writer.close()
            state = "up"
        except (OSError, TimeoutError, ValueError):
            state = "down"
        self.link = replace(self.link, broker=state)

    # --- navigation ------------------------------------------------------------------------------------

    @on(OpenEquipment)
    def _open_equipment(self, message: OpenEquipment) -> None:
        self.open_equipment(message.asset)

    def open_equipment(self, asset: str) -> None:
        self.push_screen(EquipmentScreen(self.ctx, asset))

    @on(OpenAlarm)
    def _open_alarm(self, message: OpenAlarm) -> None:
        self.push_screen(AlarmScreen(self.ctx, message.insight_id))

    # --- the : command line ----------------------------------------------------------------------------

    def action_command_line(self) -> None:
        if not isinstance(self.screen, CommandLine | HelpScreen):
            self.push_screen(CommandLine(), self.run_command)

    def run_command(self, text: str | None) -> None:
        """Run one command line (what :class:`CommandLine` returns; None or blank: nothing)."""
        if not text or not text.strip(":").strip():
            return
        try:
            cmd = parse(text)
        except CommandError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.commands_run += 1
        self._run_command(cmd)

    @work(group="command", exclusive=True, exit_on_error=False)
    async def _run_command(self, cmd: Command) -> None:
        if cmd.name == "help":
            self.action_help()
        elif cmd.name == "since":
            self.ctx.view.since_s = cmd.seconds
            await self.switch_mode("insights")
            self.action_refresh_now()
            self.notify(f"insights of the last {cmd.text}" if cmd.seconds else "all insights")
        elif cmd.name == "label":
            self._label_selected(cmd)
        elif cmd.name == "asset":
            try:
                overview = await self.source.overview(self.now())
            except Unavailable as exc:
                self.notify(f":asset: historian unavailable: {exc}", severity="error")
                return
            path = find_asset(cmd.text, (a.path for a in overview.assets))
            if path is None:
                self.notify(f"no single equipment matches {cmd.text!r} (try :asset line1/press1)",
                            severity="error", timeout=8)
                return
            self.open_equipment(path)
        elif cmd.name == "report":
            await self.switch_mode("report")
            if isinstance(self.screen, ShiftReportScreen):
                self.screen.show(cmd.line, cmd.day, cmd.shift)

    def _label_selected(self, cmd: Command) -> None:
        pick = getattr(self.screen, "selected_insight", None)
        insight = pick() if callable(pick) else None
        if not isinstance(insight, InsightRow):
            self.notify(":label needs a selected insight (insights, equipment or alarm screen)",
                        severity="warning")
            return
        assert cmd.action is not None
        if cmd.text or cmd.action is FeedbackAction.ACK:  # the comment came with the command
            fb = Feedback(insight.insight_id, cmd.action, self.operator, cmd.text, insight.asset)
            self._save_feedback(fb, self.action_refresh_now)
        else:
            self.give_feedback(insight, cmd.action, after=self.action_refresh_now)

    def help_sections(self) -> list[HelpSection]:
        sections = [HelpSection("Everywhere", "", as_bindings(self.BINDINGS))]
        sections.extend(screen_section(screen, key) for key, _, screen in MODE_SCREENS)
        sections.extend(screen_section(screen, how) for how, screen in PUSHED_SCREENS)
        return sections

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections()))

    def action_toggle_theme(self) -> None:
        self.theme = THEMES["light"] if self.theme == THEMES["dark"] else THEMES["dark"]

    def action_refresh_now(self) -> None:
        if isinstance(self.screen, EdgeScreen):
            self.screen.poll()

    # --- the one write ---------------------------------------------------------------------------------

    @on(FeedbackRequested)
    def _feedback_requested(self, message: FeedbackRequested) -> None:
        self.give_feedback(message.insight, message.action, after=self.action_refresh_now)

    def give_feedback(self, insight: InsightRow, action: FeedbackAction,
                      after: Callable[[], None] | None = None) -> None:
        """Ack at once; for a label, ask for a comment first. Saved in a worker, reported by a toast."""

        def save(choice: FeedbackChoice | None) -> None:
            if choice is None:
                return
            fb = Feedback(insight.insight_id, action, self.operator, choice.comment, insight.asset,
                          choice.suppress_hours)
            self._save_feedback(fb, after)

        if action is FeedbackAction.ACK:
            save(FeedbackChoice(""))
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
        also = f"; repeats suppressed for {fb.suppress_hours:g} h" if fb.suppress_hours else ""
        self.notify(f"{fb.action.value} saved for {fb.insight_id[:12]} by {fb.who}{also}")
        if after is not None:
            after()

    # --- lifting a suppression (the reader's other write, audited by the database) -----------------------

    @on(LiftRequested)
    def _lift_requested(self, message: LiftRequested) -> None:
        def lift(reason: str | None) -> None:
            if reason:
                self._lift(message.suppression_id, reason)

        self.push_screen(LiftDialog(message.suppression_id, message.summary), lift)

    @work(group="feedback", exit_on_error=False)
    async def _lift(self, suppression_id: int, reason: str) -> None:
        try:
            await self.source.lift_suppression(suppression_id, self.operator, reason)
        except Unavailable as exc:
            self.notify(f"not lifted: {exc}", severity="error", timeout=8)
            return
        self.suppressions_lifted += 1
        self.notify(f"suppression #{suppression_id} lifted by {self.operator}: repeats alarm again")
        self.action_refresh_now()
