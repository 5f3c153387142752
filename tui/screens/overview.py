"""Plant overview: the asset tree with each equipment's latest severity, data quality and update age."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Input, Static, Tree

from tui.context import ScreenContext
from tui.messages import OpenEquipment
from tui.models import AssetState, Overview, severity_rank
from tui.screens.base import EdgeScreen
from tui.widgets.asset_tree import AssetTree
from tui.widgets.fmt import age_text, quality_text, severity_text, short_asset, stamp
from tui.widgets.status import StatusBar


class OverviewScreen(EdgeScreen):
    LABEL = "Overview"
    HELP = ("the whole plant at a glance: each equipment's latest severity, data quality and update age; "
            "arrows move and fold, enter opens an equipment")
    BINDINGS = [  # noqa: RUF012
        Binding("slash", "find", "Find", tooltip="find an asset by name; enter jumps, esc cancels"),
        Binding("escape", "cancel_find", "Cancel", show=False, tooltip="close the find box"),
    ]

    def __init__(self, ctx: ScreenContext) -> None:
        super().__init__(ctx, id="overview")
        self.data: Overview | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="find an asset: type, enter jumps, esc cancels", id="find")
        with Horizontal(id="overview-body"):
            yield AssetTree(id="assets")
            yield Static("Loading…", id="asset-detail")
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = "Plant overview"
        self.query_one("#find", Input).display = False
        self.query_one(AssetTree).focus()

    async def load(self) -> None:
        data = await self.ctx.source.overview(self.ctx.now())
        self.data = data
        tree = self.query_one(AssetTree)
        first = not tree.nodes_by_path
        tree.update_assets(data.assets, self.ctx.now())
        if first and data.assets:
            tree.call_after_refresh(tree.move_cursor_to_line, 0)
        self._show_detail(tree.cursor_node.data if tree.cursor_node else None)

    def _show_detail(self, path: str | None) -> None:
        detail = self.query_one("#asset-detail", Static)
        tree = self.query_one(AssetTree)
        now = self.ctx.now()
        if not tree.equipment:
            detail.update("No assets yet: nothing in the historian's last 15 minutes of samples or insights.")
            return
        if path is None:
            return
        state = tree.equipment.get(path)
        if state is not None:
            detail.update(self._equipment_text(state))
            return
        below = sorted((s for p, s in tree.equipment.items() if p.startswith(path + "/")),
                       key=lambda s: (-severity_rank(s.severity), s.path))
        text = Text(path + "\n", style="bold")
        text.append(f"{len(below)} equipment\n\n")
        for s in below[:40]:
            text.append_text(severity_text(s.severity))
            text.append(" ")
            text.append_text(quality_text(s.good_fraction))
            text.append(" ")
            text.append_text(age_text(now, s.last_ts))
            text.append(f"  {short_asset(s.path)}\n")
        detail.update(text)

    def _equipment_text(self, state: AssetState) -> Text:
        now = self.ctx.now()
        text = Text(state.path + "\n", style="bold")
        text.append("\nlatest insight  ")
        text.append_text(severity_text(state.severity))
        text.append(f"  {stamp(state.insight_ts)}\n")
        text.append("data quality    ")
        text.append_text(quality_text(state.good_fraction))
        text.append("  (good, unflagged samples, last 15 min)\n")
        text.append("last update     ")
        text.append_text(age_text(now, state.last_ts))
        text.append(f" ago  {stamp(state.last_ts)}\n")
        text.append("\nenter: open the equipment", style="dim")
        return text

    @on(Tree.NodeHighlighted, "#assets")
    def _highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        self._show_detail(event.node.data)

    @on(Tree.NodeSelected, "#assets")
    def _selected(self, event: Tree.NodeSelected[str]) -> None:
        path = event.node.data
        tree = self.query_one(AssetTree)
        if path is not None and path in tree.equipment and not event.node.children:
            self.post_message(OpenEquipment(path))

    def action_find(self) -> None:
        box = self.query_one("#find", Input)
        box.display = True
        box.value = ""
        box.focus()

    def action_cancel_find(self) -> None:
        box = self.query_one("#find", Input)
        if box.display:
            box.display = False
            self.query_one(AssetTree).focus()

    @on(Input.Changed, "#find")
    def _find_changed(self, event: Input.Changed) -> None:
        tree = self.query_one(AssetTree)
        node = tree.find(event.value)
        if node is not None:
            tree.reveal(node)

    @on(Input.Submitted, "#find")
    def _find_submitted(self, event: Input.Submitted) -> None:
        tree = self.query_one(AssetTree)
        node = tree.find(event.value)
        event.input.display = False
        tree.focus()
        if node is None:
            self.notify(f"no asset matches {event.value!r}", severity="warning")
        else:
            tree.reveal(node)
