"""Shift report: a line's alarms of one day (or one shift), how they were labelled, the false-alarm rate, the
equipment with most alarms and the MES context changes; the same report ``edge report shift`` writes."""

from __future__ import annotations

from datetime import date, timedelta

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from tui.alarm_models import ShiftReport
from tui.context import ScreenContext
from tui.explain_context import line_of
from tui.report_render import change_rows, equipment_rows, summary_rows, title
from tui.screens.base import EdgeScreen
from tui.widgets.filter_box import FilterBox, matches
from tui.widgets.status import StatusBar


class ShiftReportScreen(EdgeScreen):
    LABEL = "Shift report"
    HELP = ("a line's day or shift for the supervisor: alarms, labels, false-alarm rate, top equipment, "
            "context changes (`edge report shift` writes it as Markdown or HTML)")
    BINDINGS = [  # noqa: RUF012
        Binding("left_square_bracket", "day(-1)", "Prev day", tooltip="the day before"),
        Binding("right_square_bracket", "day(1)", "Next day", tooltip="the day after"),
        Binding("l", "next_line", "Line", tooltip="the next line of the plant"),
        Binding("slash", "open_filter", "Filter", tooltip="filter the equipment and changes by words"),
    ]

    def __init__(self, ctx: ScreenContext) -> None:
        super().__init__(ctx, id="report")
        self.line: str | None = None
        self.day: date | None = None
        self.shift: str | None = None
        self.lines: list[str] = []
        self.report: ShiftReport | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBox("equipment and changes", id="report-filter")
        with VerticalScroll(id="report-body"):
            yield Static("Loading…", id="report-summary", classes="box")
            yield Static("Top equipment", classes="section")
            yield DataTable(id="report-equipment", cursor_type="row", zebra_stripes=True)
            yield Static("MES context changes", classes="section")
            yield DataTable(id="report-changes", cursor_type="row", zebra_stripes=True)
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = "Shift report"
        self.query_one("#report-equipment", DataTable).add_columns(
            "equipment", "alarms", "episodes", "true fault", "false alarm", "not labelled")
        self.query_one("#report-changes", DataTable).add_columns("time UTC", "scope", "what", "from", "to")

    def show(self, line: str | None, day: date | None, shift: str | None) -> None:
        """What ``:report LINE DATE SHIFT`` asks for (None keeps the current line and day)."""
        self.line = line or self.line
        self.day = day or self.day
        self.shift = shift
        self.poll()

    async def load(self) -> None:
        if self.line is None or not self.lines:
            overview = await self.ctx.source.overview(self.ctx.now())
            self.lines = sorted({line_of(a.path).rsplit("/", 1)[-1] for a in overview.assets})
            self.line = self.line or (self.lines[0] if self.lines else None)
        if self.line is None:
            self.query_one("#report-summary", Static).update("No lines yet: the historian has no equipment.")
            return
        day = self.day or self.ctx.now().date()
        self.report = await self.ctx.source.shift_report(self.line, day, self.shift)
        self.render_report()

    def render_report(self) -> None:
        r = self.report
        if r is None:
            return
        text = Text(title(r) + "\n", style="bold")
        for key, value in summary_rows(r):
            text.append(f"{key:<28}", style="bold")
            text.append(value + "\n")
        self.query_one("#report-summary", Static).update(text)
        q = self.query_one(FilterBox).applied
        equipment = self.query_one("#report-equipment", DataTable)
        equipment.clear()
        for row in equipment_rows(r):
            if matches(q, *row):
                equipment.add_row(*row)
        changes = self.query_one("#report-changes", DataTable)
        changes.clear()
        for row in change_rows(r):
            if matches(q, *row):
                changes.add_row(*row)

    def action_day(self, step: int) -> None:
        self.day = (self.day or self.ctx.now().date()) + timedelta(days=step)
        self.poll()

    def action_next_line(self) -> None:
        if self.lines:
            i = self.lines.index(self.line) if self.line in self.lines else -1
            self.line = self.lines[(i + 1) % len(self.lines)]
            self.poll()

    def action_open_filter(self) -> None:
        self.query_one(FilterBox).open()

    @on(FilterBox.Applied)
    def _filtered(self) -> None:
        self.render_report()
