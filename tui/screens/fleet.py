"""Fleet: every box of the site from its last heartbeat on NATS, silent ones and config drift flagged.

The rows are ``edge fleet status``'s (``edge.sinks.jetstream.fleet_table``): a box is silent after N of its
heartbeat intervals without one (or never heard from, when the config folder names it), drifted when the
config hash it reports is not what the config folder renders for it. A NATS that cannot answer is shown on
this screen (the last table stays, marked stale); it says nothing about the historian link.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from edge.sinks.jetstream.fleet_table import BoxRow
from tui.context import ScreenContext
from tui.data_source import FleetUnavailable
from tui.screens.base import EdgeScreen
from tui.widgets.status import StatusBar

COLUMNS = ("box", "state", "age", "seq", "version", "config", "desired", "spool", "unhealthy", "models",
           "last error")


def state_text(row: BoxRow) -> Text:
    """The state with a symbol first, so colour is never the only cue: ▲ silent, ! drifted or other."""
    if row.silent:
        return Text(f"▲ {row.state}", style="bold red3")
    if row.state != "ok":
        return Text(f"! {row.state}", style="dark_orange3")
    return Text("✓ ok", style="green3")


class FleetScreen(EdgeScreen):
    LABEL = "Fleet"
    HELP = ("the site's boxes from their heartbeats: which are silent, which run a config other than "
            "the one the config folder renders for them")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "toggle_problems", "Problems only",
                tooltip="show only the boxes that are silent, drifted or otherwise not ok (p again: all)"),
    ]

    DEFAULT_CSS = """
    #fleet-table { height: 1fr; }
    #fleet-summary, #fleet-error { padding: 0 1; height: auto; }
    """

    def __init__(self, ctx: ScreenContext) -> None:
        super().__init__(ctx, id="fleet")
        self.boxes: list[BoxRow] = []
        self.problems_only = False
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="fleet-summary", classes="section")
        yield Static("", id="fleet-error")
        yield DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = "Fleet"
        table = self.query_one("#fleet-table", DataTable)
        table.add_columns(*COLUMNS)
        table.focus()

    def action_toggle_problems(self) -> None:
        self.problems_only = not self.problems_only
        self._render_rows()

    @property
    def shown(self) -> list[BoxRow]:
        return [b for b in self.boxes if b.state != "ok"] if self.problems_only else list(self.boxes)

    async def load(self) -> None:
        try:
            self.boxes = await self.ctx.source.fleet(self.ctx.now())
            self.error = None
        except FleetUnavailable as exc:
            self.error = str(exc)
        self._render_rows()

    def _render_rows(self) -> None:
        silent = sum(1 for b in self.boxes if b.silent)
        drifted = sum(1 for b in self.boxes if b.drifted)
        scope = " (problems only: p shows all)" if self.problems_only else ""
        self.query_one("#fleet-summary", Static).update(
            f"{len(self.boxes)} boxes, {silent} silent, {drifted} drifted{scope}")
        self.query_one("#fleet-error", Static).update(
            Text(f"! {self.error} (retrying; the table below is stale)", style="dark_orange3")
            if self.error else "")
        table = self.query_one("#fleet-table", DataTable)
        keep = table.cursor_row
        table.clear()
        rows = self.shown
        for r in rows:
            table.add_row(
                r.box, state_text(r), "-" if r.age_s == float("inf") else f"{r.age_s:.0f}s", str(r.seq),
                r.version or "-", r.reported_sha256[:12] or "-", (r.desired_sha256 or "-")[:12],
                f"{r.spool_rows:.0f}", ",".join(r.unhealthy) or "-", ",".join(r.models) or "-",
                (r.last_error or "-")[:40], key=r.box)
        if rows:
            table.move_cursor(row=min(max(keep, 0), len(rows) - 1))
