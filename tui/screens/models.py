"""Models: the deployed model version per equipment, its runtime, recent scores against threshold, the
engineers' labels on it (true faults, false alarms, acks, active suppressions), and on ``c`` the selected
model's champion against its challenger in shadow over the last 24 h."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.context import ScreenContext
from tui.lifecycle_source import CompareView, LabelCounts
from tui.models import ModelRow
from tui.screens.base import EdgeScreen
from tui.widgets.compare_text import compare_text
from tui.widgets.filter_box import FilterBox, matches
from tui.widgets.fmt import age, count, num, short_asset, spark
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
            "the threshold, the labels engineers gave it, and its champion against its challenger")
    BINDINGS = [  # noqa: RUF012
        Binding("slash", "open_filter", "Filter", tooltip="filter the rows by words (asset, model, runtime)"),
        Binding("c", "compare", "Compare",
                tooltip="the selected model's champion against its challenger in shadow, last 24 h"),
    ]
    COMPARE_WINDOW = timedelta(hours=24)

    def __init__(self, ctx: ScreenContext) -> None:
        super().__init__(ctx, id="models")
        self.rows: list[ModelRow] = []
        self.labels: dict[tuple[str, str], LabelCounts] = {}
        self.compare_model: str | None = None
        self.comparison: CompareView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBox("models", id="models-filter")
        yield Static("Deployed models per equipment (from the last 24 h of insights)", classes="section")
        yield DataTable(id="model-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="model-compare", markup=False)
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = "Models"
        table = self.query_one("#model-table", DataTable)
        table.add_columns("asset", "model", "version", "sha256", "runtime", "last", "scores", "thr", "over",
                          "TF", "FA", "ack", "sup")
        table.focus()

    async def load(self) -> None:
        now = self.ctx.now()
        rows = await self.ctx.source.models(now)
        self.labels = await self.ctx.source.label_counts(now)
        if self.compare_model is not None:
            since = now - self.COMPARE_WINDOW
            self.comparison = await self.ctx.source.model_compare(self.compare_model, since, now)
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
        panel = self.query_one("#model-compare", Static)
        panel.display = self.compare_model is not None
        if self.comparison is not None:
            panel.update(compare_text(self.comparison))
        elif self.compare_model is not None:
            panel.update(f"comparing {self.compare_model} ...")

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

    def action_open_filter(self) -> None:
        self.query_one(FilterBox).open()

    @on(FilterBox.Applied)
    def _filtered(self) -> None:
        self._show(self.ctx.now())
