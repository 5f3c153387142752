"""The ISA-95 asset tree: enterprise, site, area, line, (cell,) equipment, built from asset paths."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tui.models import AssetState, severity_rank
from tui.widgets.fmt import age_text, quality_text, severity_text


def equipment_label(state: AssetState, now: datetime) -> Text:
    text = Text(state.name)
    text.append("  ")
    text.append_text(severity_text(state.severity))
    text.append(" ")
    text.append_text(quality_text(state.good_fraction))
    text.append(" ")
    text.append_text(age_text(now, state.last_ts))
    return text


def group_label(name: str, worst: str | None, count: int) -> Text:
    text = Text(name, style="bold")
    text.append(f"  ({count}) ", style="dim")
    if worst is not None:
        text.append_text(severity_text(worst))
    return text


class AssetTree(Tree[str]):
    """Node data is the asset path (groups too). Left folds or goes up, right unfolds."""

    BINDINGS = [  # noqa: RUF012
        Binding("left", "fold", "Fold", show=False),
        Binding("right", "unfold", "Unfold", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("plant", data="", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.nodes_by_path: dict[str, TreeNode[str]] = {}
        self.equipment: dict[str, AssetState] = {}

    def action_fold(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)

    def action_unfold(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand:
            node.expand()

    def update_assets(self, assets: tuple[AssetState, ...], now: datetime) -> None:
        """Add new assets, relabel all; keeps the cursor and what is folded."""
        for state in assets:
            self.equipment[state.path] = state
            parts = state.path.split("/")
            parent = self.root
            for depth in range(1, len(parts) + 1):
                path = "/".join(parts[:depth])
                node = self.nodes_by_path.get(path)
                if node is None:
                    leaf = depth == len(parts)
                    node = (parent.add_leaf(parts[depth - 1], data=path) if leaf
                            else parent.add(parts[depth - 1], data=path, expand=True))
                    self.nodes_by_path[path] = node
                parent = node
        for path, node in self.nodes_by_path.items():
            found = self.equipment.get(path)
            if found is not None and not node.children:
                node.set_label(equipment_label(found, now))
            else:
                below = [s for p, s in self.equipment.items() if p.startswith(path + "/")]
                worst = max((s.severity for s in below if s.severity is not None),
                            key=severity_rank, default=None)
                node.set_label(group_label(path.rsplit("/", 1)[-1], worst, len(below)))

    def find(self, text: str) -> TreeNode[str] | None:
        """The first node whose name, then whose path, contains ``text`` (case-insensitive)."""
        needle = text.strip().lower()
        if not needle:
            return None
        paths = sorted(self.nodes_by_path)
        for path in paths:
            if needle in path.rsplit("/", 1)[-1].lower() and path in self.equipment:
                return self.nodes_by_path[path]
        for path in paths:
            if needle in path.rsplit("/", 1)[-1].lower():
                return self.nodes_by_path[path]
        for path in paths:
            if needle in path.lower():
                return self.nodes_by_path[path]
        return None

    def reveal(self, node: TreeNode[str]) -> None:
        parent = node.parent
        while parent is not None:
            parent.expand()
            parent = parent.parent
        self.call_after_refresh(self.move_cursor, node)
