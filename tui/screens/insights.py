"""Insights feed: newest first, filtered by severity, asset and model; ack and label with a comment."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from tui.context import ScreenContext
from tui.messages import FeedbackRequested, OpenAlarm
from tui.models import SEVERITY_FILTERS, FeedbackAction, InsightFilter, InsightRow
from tui.screens.base import EdgeScreen
from tui.widgets.fmt import num, severity_text, short_asset, since_text, stamp
from tui.widgets.status import StatusBar


class InsightsScreen(EdgeScreen):
    LABEL = "Insights"
    HELP = ("every model verdict, newest first: select one to see why (enter), filter the feed, "
            "ack or label it")
    BINDINGS = [  # noqa: RUF012
        Binding("enter", "open_alarm", "Why", tooltip="open the alarm detail: its explanation and context"),
        Binding("a", "feedback('ack')", "Ack", tooltip="acknowledge the selected insight"),
        Binding("t", "feedback('true_fault')", "True fault", tooltip="label it a true fault, with a comment"),
        Binding("f", "feedback('false_alarm')", "False alarm",
                tooltip="label it a false alarm, with a comment"),
        Binding("s", "cycle_severity", "Severity", tooltip="severity filter: all, info+, warning+, alarm+"),
        Binding("slash", "filter('asset')", "Asset", tooltip="filter by asset (empty clears)"),
        Binding("m", "filter('model')", "Model", tooltip="filter by model (empty clears)"),
        Binding("escape", "close_filter", "Cancel", show=False, tooltip="close the filter box"),
    ]

    def __init__(self, ctx: ScreenContext) -> None:
        super().__init__(ctx, id="insights")
        self.filter = InsightFilter()
        self.rows: list[InsightRow] = []
        self._editing: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="filters")
        yield Input(id="filter-input")
        yield DataTable(id="feed", cursor_type="row", zebra_stripes=True)
        yield Static(id="insight-detail")
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = "Insights"
        self.query_one("#filter-input", Input).display = False
        table = self.query_one("#feed", DataTable)
        table.add_columns("time UTC", "sev", "asset", "model", "score/thr", "feedback")
        table.focus()
        self._show_filters()

    def _show_filters(self) -> None:
        f = self.filter
        text = Text("filter  ", style="bold")
        text.append("severity ")
        text.append(f"{f.severity or 'all'}+ " if f.severity else "all ", style="bold")
        text.append(" asset ")
        text.append(f.asset or "*", style="bold")
        text.append("  model ")
        text.append(f.model or "*", style="bold")
        if self.ctx.view.since_s:
            text.append("  since ")
            text.append(f"{since_text(self.ctx.view.since_s)} ago", style="bold")
        text.append(f"   {len(self.rows)} shown", style="dim")
        self.query_one("#filters", Static).update(text)

    async def load(self) -> None:
        flt = replace(self.filter, since_s=self.ctx.view.since_s)
        rows = await self.ctx.source.insights(flt, self.ctx.now())
        self.rows = rows
        table = self.query_one("#feed", DataTable)
        keep_key: str | None = None
        if 0 <= table.cursor_row < table.row_count:
            keep_key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        table.clear()
        for r in rows:
            fb = Text(r.feedback or "")
            if r.feedback == FeedbackAction.TRUE_FAULT:
                fb.stylize("bold red3")
            elif r.feedback == FeedbackAction.FALSE_ALARM:
                fb.stylize("green3")
            table.add_row(stamp(r.ts)[5:], severity_text(r.severity, r.gated, r.suppressed),
                          short_asset(r.asset),
                          f"{r.model} {r.model_version}", f"{num(r.score, 2)}/{num(r.threshold, 2)}", fb,
                          key=r.insight_id)
        if rows:
            index = next((i for i, r in enumerate(rows) if r.insight_id == keep_key), 0)
            table.move_cursor(row=index)
        self._show_filters()
        self._show_detail()

    def selected(self) -> InsightRow | None:
        table = self.query_one("#feed", DataTable)
        if 0 <= table.cursor_row < len(self.rows):
            return self.rows[table.cursor_row]
        return None

    def _show_detail(self) -> None:
        r = self.selected()
        box = self.query_one("#insight-detail", Static)
        if r is None:
            box.update(Text("no insights match" if self.rows == [] else "", style="dim"))
            return
        text = Text(f"{r.asset}\n", style="bold")
        text.append(f"{r.insight_id}  sha256 {r.model_sha256[:12]}\n", style="dim")
        text.append(f"top features: {r.top_features or '-'}   (enter: why)")
        if r.feedback:
            text.append(f"\nfeedback: {r.feedback} by {r.feedback_by}")
        box.update(text)

    @on(DataTable.RowHighlighted, "#feed")
    def _row(self) -> None:
        self._show_detail()

    def selected_insight(self) -> InsightRow | None:
        return self.selected()

    def action_open_alarm(self) -> None:
        insight = self.selected()
        if insight is None:
            self.notify("no insight selected", severity="warning")
            return
        self.post_message(OpenAlarm(insight.insight_id))

    @on(DataTable.RowSelected, "#feed")
    def _row_selected(self) -> None:
        self.action_open_alarm()

    def action_feedback(self, action: str) -> None:
        insight = self.selected()
        if insight is None:
            self.notify("no insight selected", severity="warning")
            return
        self.post_message(FeedbackRequested(insight, FeedbackAction(action)))

    def action_cycle_severity(self) -> None:
        i = SEVERITY_FILTERS.index(self.filter.severity) if self.filter.severity in SEVERITY_FILTERS else 0
        sev = SEVERITY_FILTERS[(i + 1) % len(SEVERITY_FILTERS)]
        self._apply(replace(self.filter, severity=sev))

    def action_filter(self, what: str) -> None:
        self._editing = what
        box = self.query_one("#filter-input", Input)
        current = (self.filter.asset if what == "asset" else self.filter.model) or "*"
        box.placeholder = f"{what} contains… (now {current}; enter applies, empty clears, esc cancels)"
        box.value = ""
        box.display = True
        box.focus()

    def action_close_filter(self) -> None:
        box = self.query_one("#filter-input", Input)
        if box.display:
            box.display = False
            self._editing = None
            self.query_one("#feed", DataTable).focus()

    @on(Input.Submitted, "#filter-input")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip() or None
        if self._editing == "asset":
            self._apply(replace(self.filter, asset=value))
        elif self._editing == "model":
            self._apply(replace(self.filter, model=value))
        self.action_close_filter()

    def _apply(self, flt: InsightFilter) -> None:
        self.filter = flt
        self._show_filters()
        self.poll()
