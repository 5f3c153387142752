"""Equipment view: live tag plots, the latest feature values, the MES context now, the insight history."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

from tui.context import ScreenContext
from tui.messages import FeedbackRequested, OpenAlarm
from tui.models import EquipmentDetail, FeedbackAction, InsightRow
from tui.screens.base import EdgeScreen
from tui.widgets.filter_box import FilterBox, matches
from tui.widgets.fmt import age, clock, num, severity_text, stamp
from tui.widgets.status import StatusBar


class TagRow(Horizontal):
    """One tag: name, unit, last value and age, then a sparkline of the last few minutes."""

    def __init__(self, tag: str) -> None:
        super().__init__(classes="tag-row")
        self.tag = tag

    def compose(self) -> ComposeResult:
        yield Static(self.tag, classes="tag-label", markup=False)
        yield Sparkline([], classes="tag-spark")


class EquipmentScreen(EdgeScreen):
    LABEL = "Equipment"
    HELP = ("one machine now: its MES context, latest features, live tag plots and insight history; "
            "open an insight (enter) to see why")
    BINDINGS = [  # noqa: RUF012
        Binding("escape", "back", "Back", tooltip="back to the overview"),
        Binding("backspace", "back", "Back", show=False, tooltip="back to the overview"),
        Binding("a", "feedback('ack')", "Ack", tooltip="acknowledge the selected insight"),
        Binding("t", "feedback('true_fault')", "True fault", tooltip="label it a true fault, with a comment"),
        Binding("f", "feedback('false_alarm')", "False alarm",
                tooltip="label it a false alarm, with a comment"),
        Binding("enter", "open_alarm", "Why", tooltip="open the selected insight's alarm detail"),
        Binding("slash", "open_filter", "Filter", tooltip="filter the insight history by words"),
    ]

    def __init__(self, ctx: ScreenContext, asset: str) -> None:
        super().__init__(ctx, id="equipment")
        self.asset = asset
        self.detail: EquipmentDetail | None = None
        self.rows: dict[str, TagRow] = {}
        self.shown: list[InsightRow] = []  # the insight history rows the filter lets through, in table order

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBox("insight history", id="equipment-filter")
        with VerticalScroll(id="equipment-body"):
            yield Static(Text(self.asset, style="bold"), id="equipment-title")
            with Horizontal(id="equipment-top"):
                yield Static("MES context: loading…", id="mes", classes="box")
                yield Static("Features: loading…", id="features", classes="box")
            yield Static("Tags (last 5 min)", classes="section")
            yield VerticalScroll(id="tags")
            yield Static("Insight history", classes="section")
            yield DataTable(id="equipment-insights", cursor_type="row", zebra_stripes=True)
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = self.asset.rsplit("/", 1)[-1]
        table = self.query_one("#equipment-insights", DataTable)
        table.add_columns("time", "sev", "model", "score/thr", "feedback", "top features")
        table.focus()

    def action_back(self) -> None:
        self.dismiss()

    def selected_insight(self) -> InsightRow | None:
        table = self.query_one("#equipment-insights", DataTable)
        row = table.cursor_row
        if 0 <= row < len(self.shown):
            return self.shown[row]
        return None

    def action_open_alarm(self) -> None:
        insight = self.selected_insight()
        if insight is not None:
            self.post_message(OpenAlarm(insight.insight_id))

    @on(DataTable.RowSelected, "#equipment-insights")
    def _row_selected(self) -> None:
        self.action_open_alarm()

    def action_open_filter(self) -> None:
        self.query_one(FilterBox).open()

    @on(FilterBox.Applied)
    def _filtered(self) -> None:
        self._show_insights()

    def action_feedback(self, action: str) -> None:
        insight = self.selected_insight()
        if insight is None:
            self.notify("no insight selected", severity="warning")
            return
        self.post_message(FeedbackRequested(insight, FeedbackAction(action)))

    async def load(self) -> None:
        d = await self.ctx.source.equipment(self.asset, self.ctx.now())
        self.detail = d
        now = self.ctx.now()
        c = d.context
        mes = Text("MES context now\n", style="bold")
        for key, text in (("work order", c.work_order), ("product", c.product), ("batch", c.batch),
                          ("shift", c.shift)):
            mes.append(f"{key:<11}{text or '-'}\n")
        mes.append(f"as of      {clock(c.since)} UTC", style="dim")
        self.query_one("#mes", Static).update(mes)
        feats = Text("Latest features\n", style="bold")
        if d.features_window_end:
            feats.append(f"window end {clock(d.features_window_end)} UTC\n", style="dim")
        if not d.features:
            feats.append("none yet\n", style="dim")
        for name, value in d.features[:12]:
            feats.append(f"{name[:22]:<22} {num(value):>10}\n")
        self.query_one("#features", Static).update(feats)

        box = self.query_one("#tags", VerticalScroll)
        for series in d.tags:
            row = self.rows.get(series.tag)
            if row is None:
                row = TagRow(series.tag)
                self.rows[series.tag] = row
                await box.mount(row)
            line = Text(f"{series.tag[:24]:<24} ")
            line.append(f"{num(series.last_value):>9} {series.unit or '':<5}")
            line.append(f" {age(now, series.last_ts):>4}", style="dim")
            if series.last_quality != 0:
                line.append(" BAD" if series.last_quality >= 2 else " UNC", style="bold dark_orange3")
            row.query_one(".tag-label", Static).update(line)
            row.query_one(Sparkline).data = list(series.values)
        if not d.tags and not self.rows and not box.children:
            await box.mount(Static("no samples in the last 15 minutes", classes="dim"))

        self._show_insights()

    def _show_insights(self) -> None:
        if self.detail is None:
            return
        q = self.query_one(FilterBox).applied
        table = self.query_one("#equipment-insights", DataTable)
        keep = table.cursor_row
        table.clear()
        self.shown = [i for i in self.detail.insights
                      if matches(q, i.severity, i.model, i.feedback, i.top_features, stamp(i.ts))]
        for i in self.shown:
            table.add_row(
                f"{stamp(i.ts)[5:]}", severity_text(i.severity, i.gated, i.suppressed),
                f"{i.model} {i.model_version}",
                f"{num(i.score, 2)}/{num(i.threshold, 2)}", i.feedback or "", i.top_features,
                key=i.insight_id,
            )
        if self.shown:
            table.move_cursor(row=min(max(keep, 0), len(self.shown) - 1))
