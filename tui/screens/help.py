"""The help screen (``?``): every key, on one page."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Everywhere", (
        ("1 / 2 / 3 / 4", "overview · insights · models · health"),
        ("?", "this help (esc or ? closes it)"),
        ("ctrl+t", "light / dark theme"),
        ("r", "refresh now"),
        ("q", "quit"),
        ("tab / shift+tab", "next / previous pane; the mouse works too"),
    )),
    ("Overview", (
        ("↑ ↓ ← →", "move in the asset tree, fold and unfold"),
        ("enter", "open the equipment (or fold a group)"),
        ("/", "find an asset by name; enter jumps, esc cancels"),
    )),
    ("Equipment", (
        ("esc / backspace", "back to the overview"),
        ("a / t / f", "ack / true fault / false alarm on the selected insight"),
    )),
    ("Insights", (
        ("↑ ↓", "select an insight (newest first)"),
        ("a", "acknowledge it"),
        ("t / f", "label it a true fault / a false alarm, with a comment"),
        ("s", "severity filter: all, info+, warning+, alarm+"),
        ("/ · m", "filter by asset · by model (empty clears)"),
    )),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [  # noqa: RUF012
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        lines: list[str] = ["[b]Factory Edge — keys[/b]", ""]
        for section, keys in KEYS:
            lines.append(f"[b]{section}[/b]")
            lines.extend(f"  [b]{k:<16}[/b] {what}" for k, what in keys)
            lines.append("")
        lines.append("Times are UTC. Colour always comes with a symbol: ✓ ok, i info, ! warn, ▲ high/crit.")
        with VerticalScroll(id="help-box"):
            yield Static("\n".join(lines), id="help-text")
