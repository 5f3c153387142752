"""Models: the deployed model version per equipment, its runtime, recent scores against threshold, the
engineers' labels on it (true faults, false alarms, acks, active suppressions), the retraining runs, on ``s``
the active suppressions (``l`` lifts one), and on ``c`` the selected model's champion against its challenger
in shadow over a period (``p`` cycles 1 h / 24 h / 7 d) sliced by shift, product or equipment (``v``)."""

from __future__ import annotations

import time
from datetime import datetime

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.compare_view import PERIODS, SLICE_KEYS, CompareView
from tui.context import ScreenContext
from tui.messages import LiftRequested
from tui.models import LabelCounts, ModelRow, RetrainRow, SuppressionRow
from tui.screens.base import EdgeScreen
from tui.widgets.compare_text import compare_text
from tui.widgets.filter_box import FilterBox, matches
from tui.widgets.fmt import age, count, num, short_asset, spark
from tui.widgets.lifecycle_text import retrain_text, suppression_cells, suppression_summary
from tui.widgets.status import StatusBar


def scores_text(row: ModelRow, width: int = 16) -> Text:
    """Sparkline of recent scores scaled so the threshold sits at the top third; over-threshold in red."""
    if not row.scores:
        return Text("")
    hi = max(max(row.scores), (row.threshold or 0) * 1.5)
    lo = min(0.0, min(row.scores))
    line = spark(row.scores, width, lo, hi)
    text = Text()
    for ch, value in zip(line, row.scores[-len(line):], strict=True):
        over = row.threshold is not None and value > row.threshold
        text.append(ch, style="bold red3" if over else "")
    return text


class ModelsScreen(EdgeScreen):
    LABEL = "Models"
    HELP = ("which model version watches each equipment, on which runtime, its recent scores against "
            "the threshold, the labels engineers gave it, its retraining, its active suppressions, and its "
            "champion against its challenger")
    BINDINGS = [  # noqa: RUF012
        Binding("slash", "open_filter", "Filter", tooltip="filter the rows by words (asset, model, runtime)"),
        Binding("c", "compare", "Compare",
                tooltip="the selected model's champion against its challenger in shadow (again: close)"),
        Binding("p", "period", "Period", show=False, tooltip="the compare panel's period: 1 h, 24 h, 7 d"),
        Binding("v", "slice", "Slice", show=False,
                tooltip="the compare panel's slices: by shift, product, equipment"),
        Binding("s", "suppressions", "Suppressions",
                tooltip="the active suppressions of false-alarm repeats (again: close)"),
        Binding("l", "lift", "Lift", show=False, tooltip="lift the selected suppression (asks why; audited)"),
    ]
    COMPARE_REFRESH_S = 30.0  # a comparison reads the whole period: not on every poll

    def __init__(self, ctx: ScreenContext) -> None:
        super().__init__(ctx, id="models")
        self.rows: list[ModelRow] = []
        self.labels: dict[tuple[str, str], LabelCounts] = {}
        self.compare_model: str | None = None
        self.comparison: CompareView | None = None
        self.period = 1  # index into PERIODS: 24 h
        self.slice_key = 0  # index into SLICE_KEYS: shift
        self._compared: tuple[str, int, float] | None = None  # model, period, when: of the comparison shown
        self.show_suppressions = False
        self.suppressions: list[SuppressionRow] = []
        self.retrain_rows: list[RetrainRow] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBox("models", id="models-filter")
        yield Static("Deployed models per equipment (from the last 24 h of insights)", classes="section")
        yield DataTable(id="model-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="model-retrains")
        yield Static("Active suppressions (l lifts the selected one)", classes="section", id="sup-title")
        yield DataTable(id="sup-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="model-compare", markup=False)
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = "Models"
        table = self.query_one("#model-table", DataTable)
        table.add_columns("asset", "model", "version", "sha256", "runtime", "last", "scores", "thr", "over",
                          "TF", "FA", "ack", "sup")
        self.query_one("#sup-table", DataTable).add_columns("id", "asset", "model", "leading features",
                                                             "until (left)", "by", "kept", "comment")
        self._show_suppressions(self.ctx.now())
        self.query_one("#model-retrains", Static).display = False
        table.focus()

    async def load(self) -> None:
        now = self.ctx.now()
        rows = await self.ctx.source.models(now)
        self.labels = await self.ctx.source.label_counts(now)
        self.retrain_rows = await self.ctx.source.retrains(now)
        if self.show_suppressions:
            self.suppressions = await self.ctx.source.active_suppressions(now)
        model, period = self.compare_model, self.period
        if model is not None:
            done = self._compared
            due = (done is None or done[:2] != (model, period)
                   or time.monotonic() - done[2] > self.COMPARE_REFRESH_S)
            if due:
                view = await self.ctx.source.model_compare(model, now - PERIODS[period][1], now)
                if (self.compare_model, self.period) == (model, period):  # not changed while it ran
                    self.comparison, self._compared = view, (model, period, time.monotonic())
        self.rows = rows
        self._show(now)

    def _show(self, now: datetime) -> None:
        q = self.query_one(FilterBox).applied
        rows = [r for r in self.rows if matches(q, r.asset, r.model, r.model_version, r.runtime)]
        table = self.query_one("#model-table", DataTable)
        keep = table.cursor_row
        table.clear()
        for r in rows:
            over = Text(count(r.over_threshold), style="bold red3" if r.over_threshold else "")
            lc = self.labels.get((r.asset, r.model), LabelCounts())
            table.add_row(short_asset(r.asset), r.model, r.model_version, r.model_sha256[:8],
                          r.runtime or "?", age(now, r.last_ts), scores_text(r), num(r.threshold, 2), over,
                          count(lc.true_faults), count(lc.false_alarms), count(lc.acks),
                          count(lc.suppressions),
                          key=f"{r.asset}|{r.model}")
        if rows:
            table.move_cursor(row=min(max(keep, 0), len(rows) - 1))
        retrains = self.query_one("#model-retrains", Static)
        retrains.display = bool(self.retrain_rows)
        if self.retrain_rows:
            retrains.update(retrain_text(self.retrain_rows, now))
        self._show_suppressions(now)
        panel = self.query_one("#model-compare", Static)
        panel.display = self.compare_model is not None
        if self.comparison is not None:
            panel.update(compare_text(self.comparison, PERIODS[self.period][0],
                                      SLICE_KEYS[self.slice_key][0]))
        elif self.compare_model is not None:
            panel.update(f"comparing {self.compare_model} over the last {PERIODS[self.period][0]} ...")

    def _show_suppressions(self, now: datetime) -> None:
        table = self.query_one("#sup-table", DataTable)
        self.query_one("#sup-title", Static).display = table.display = self.show_suppressions
        if not self.show_suppressions:
            return
        keep = table.cursor_row
        table.clear()
        for s in self.suppressions:
            table.add_row(*suppression_cells(s, now), key=str(s.id))
        if self.suppressions:
            table.move_cursor(row=min(max(keep, 0), len(self.suppressions) - 1))

    def selected_model(self) -> str | None:
        q = self.query_one(FilterBox).applied
        rows = [r for r in self.rows if matches(q, r.asset, r.model, r.model_version, r.runtime)]
        row = self.query_one("#model-table", DataTable).cursor_row
        return rows[row].model if 0 <= row < len(rows) else None

    def action_compare(self) -> None:
        """Open the comparison of the selected model; on the model already compared, close it."""
        model = self.selected_model()
        if model is None or model == self.compare_model:
            self.compare_model, self.comparison = None, None
            self._show(self.ctx.now())
            return
        self.compare_model, self.comparison = model, None
        self.poll()

    def action_period(self) -> None:
        self.period = (self.period + 1) % len(PERIODS)
        self.comparison = None
        if self.compare_model is not None:
            self._show(self.ctx.now())
            self.poll()

    def action_slice(self) -> None:
        self.slice_key = (self.slice_key + 1) % len(SLICE_KEYS)
        self._show(self.ctx.now())

    def action_suppressions(self) -> None:
        """Show the active suppressions (and focus them, for ``l``); again: hide them."""
        self.show_suppressions = not self.show_suppressions
        self._show(self.ctx.now())
        if self.show_suppressions:
            self.query_one("#sup-table", DataTable).focus()
            self.poll()
        else:
            self.query_one("#model-table", DataTable).focus()

    def selected_suppression(self) -> SuppressionRow | None:
        if not self.show_suppressions:
            return None
        row = self.query_one("#sup-table", DataTable).cursor_row
        return self.suppressions[row] if 0 <= row < len(self.suppressions) else None

    def action_lift(self) -> None:
        """Ask the app to lift the selected suppression (it asks why); opens the list first if hidden."""
        if not self.show_suppressions:
            self.action_suppressions()
            return
        sup = self.selected_suppression()
        if sup is None:
            self.notify("no active suppression selected", severity="warning")
            return
        self.post_message(LiftRequested(sup.id, suppression_summary(sup)))

    def action_open_filter(self) -> None:
        self.query_one(FilterBox).open()

    @on(FilterBox.Applied)
    def _filtered(self) -> None:
        self._show(self.ctx.now())
