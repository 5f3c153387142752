"""Alarm detail: why the model raised it (leading features against their training baseline), what happened
around it on the equipment and its line, its signals against their training band, the similar past alarms
and how engineers labelled them. Pushed from the insights feed (enter) or an equipment's insight history."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from tui.alarm_models import AlarmDetail, ExplainedFeature
from tui.context import ScreenContext
from tui.messages import FeedbackRequested, OpenAlarm
from tui.models import FeedbackAction, InsightRow
from tui.screens.base import EdgeScreen
from tui.widgets.band_plot import band_plot
from tui.widgets.filter_box import FilterBox, matches
from tui.widgets.fmt import clock, num, plus_minus, severity_text, short_asset, stamp
from tui.widgets.status import StatusBar

KIND_TEXT = {"mes": "MES", "data_quality": "data quality", "data_loss": "data loss", "gated": "gated",
             "gap": "gap", "connection": "connection", "neighbour": "neighbour"}


def feature_text(f: ExplainedFeature) -> str:
    """"temperature mean 78.4 degC, baseline 61.2 ± 1.8 (+17.2 degC, 9.6 sd)"."""
    unit = f" {f.unit}" if f.unit else ""
    text = f"{f.signal} {f.stat or 'value'} {num(f.value, 2)}{unit}"
    if f.baseline_mean is None:
        return text + " (no training baseline in the model package)"
    text += f", baseline {plus_minus(f.baseline_mean, f.baseline_sd or 0.0)}"
    if f.deviation is not None:
        sign = "+" if f.deviation >= 0 else "-"
        z = f", {num(f.z, 1)} sd" if f.z is not None else ""
        text += f" ({sign}{num(abs(f.deviation), 2)}{unit}{z})"
    return text


class AlarmScreen(EdgeScreen):
    LABEL = "Alarm detail"
    HELP = ("why an alarm was raised: leading features against the training baseline, what happened around "
            "it, its signals against their band, similar past alarms and their labels")
    BINDINGS = [  # noqa: RUF012
        Binding("escape", "back", "Back", tooltip="back to the list it was opened from"),
        Binding("a", "feedback('ack')", "Ack", tooltip="acknowledge this alarm"),
        Binding("t", "feedback('true_fault')", "True fault", tooltip="label it a true fault, with a comment"),
        Binding("f", "feedback('false_alarm')", "False alarm",
                tooltip="label it a false alarm, with a comment"),
        Binding("slash", "open_filter", "Filter", tooltip="filter the events and similar alarms by words"),
    ]

    def __init__(self, ctx: ScreenContext, insight_id: str) -> None:
        super().__init__(ctx, id="alarm")
        self.insight_id = insight_id
        self.detail: AlarmDetail | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBox("events and similar alarms", id="alarm-filter")
        with VerticalScroll(id="alarm-body"):
            yield Static("Loading…", id="alarm-title")
            yield Static(id="alarm-headline")
            yield Static(id="alarm-why", classes="box")
            yield Static(id="alarm-plot")
            yield Static("Around it: the window and the 10 minutes before it", classes="section")
            yield DataTable(id="alarm-around", cursor_type="row", zebra_stripes=True)
            yield Static("Similar past alarms (same equipment or model, nearest in contributions)",
                         classes="section")
            yield DataTable(id="alarm-similar", cursor_type="row", zebra_stripes=True)
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = "Alarm detail"
        self.query_one("#alarm-around", DataTable).add_columns("time UTC", "what", "where", "")
        self.query_one("#alarm-similar", DataTable).add_columns(
            "time UTC", "equipment", "sev", "distance", "label", "by", "comment")

    async def load(self) -> None:
        self.detail = await self.ctx.source.alarm(self.insight_id)
        self.render_detail()

    def render_detail(self) -> None:
        d = self.detail
        if d is None:
            return
        i = d.insight
        title = Text(f"{i.asset}\n", style="bold")
        title.append_text(severity_text(i.severity, i.gated, i.suppressed))
        title.append(f"  {stamp(i.ts)} UTC  window {clock(d.window_start)}–{clock(d.window_end)}  "
                     f"score {num(i.score, 3)} / threshold {num(i.threshold, 3)}  "
                     f"{i.model} {i.model_version}")
        if d.gated:
            title.append("  (gated: built on bad data)", style="dark_orange3")
        if i.suppressed:
            title.append(f"  (suppressed {i.severity}: a repeat of a false alarm, not sent to MES; "
                         "edge models suppress list)", style="dim")
        ctx = ", ".join(f"{k} {v}" for k, v in sorted(d.context.items()) if v)
        title.append(f"\ncontext: {ctx or '-'}   feedback: ")
        title.append(f"{i.feedback} by {i.feedback_by}" if i.feedback else "none yet", style="bold")
        self.query_one("#alarm-title", Static).update(title)
        head = Text()
        for line in d.headline:
            head.append("! " + line + "\n", style="bold dark_orange3")
        self.query_one("#alarm-headline", Static).update(head)
        why = Text("Why: the leading features against the training baseline\n", style="bold")
        if not d.features:
            why.append("no explanation stored with this insight (an ok row, or scored before explanations)\n",
                       style="dim")
            if i.top_features:
                why.append(f"top features: {i.top_features}")
        for n, f in enumerate(d.features, 1):
            contrib = f"  contribution {num(f.contribution, 3)}" if f.contribution is not None else ""
            why.append(f"{n}. {feature_text(f)}")
            why.append(contrib + "\n", style="dim")
        self.query_one("#alarm-why", Static).update(why)
        plot = Text()
        for t in d.traces:
            plot.append_text(band_plot(t, d.window_start, d.window_end))
            plot.append("\n")
        if d.traces:
            plot.append("━ the scored window   ░ training band   █ value (red: above the band)", style="dim")
        self.query_one("#alarm-plot", Static).update(plot)
        self.render_lists()

    def render_lists(self) -> None:
        d = self.detail
        if d is None:
            return
        q = self.query_one(FilterBox).applied
        around = self.query_one("#alarm-around", DataTable)
        around.clear()
        for e in d.around:
            if matches(q, e.kind, e.text, e.asset):
                inside = d.window_start <= e.ts <= d.window_end
                around.add_row(clock(e.ts), KIND_TEXT.get(e.kind, e.kind), e.text,
                               "in window" if inside else "before")
        similar = self.query_one("#alarm-similar", DataTable)
        similar.clear()
        for c in d.similar:
            if matches(q, c.asset, c.severity, c.label, c.who, c.comment):
                label = Text(c.label or "not labelled", style="bold red3" if c.label == "true_fault" else
                             ("green3" if c.label == "false_alarm" else "dim"))
                similar.add_row(stamp(c.ts)[5:], short_asset(c.asset), severity_text(c.severity),
                                num(c.distance, 2), label, c.who or "", c.comment[:40], key=c.insight_id)

    def selected_insight(self) -> InsightRow | None:
        return self.detail.insight if self.detail else None

    def action_back(self) -> None:
        self.dismiss()

    def action_feedback(self, action: str) -> None:
        insight = self.selected_insight()
        if insight is None:
            self.notify("the alarm is still loading", severity="warning")
            return
        self.post_message(FeedbackRequested(insight, FeedbackAction(action)))

    def action_open_filter(self) -> None:
        self.query_one(FilterBox).open()

    @on(FilterBox.Applied)
    def _filtered(self) -> None:
        self.render_lists()

    @on(DataTable.RowSelected, "#alarm-similar")
    def _open_similar(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.post_message(OpenAlarm(str(event.row_key.value)))
