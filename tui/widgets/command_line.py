"""The ``:`` command line, beside Textual's palette (ctrl+p): one input at the bottom of the screen; enter
runs what was typed (the app parses it with :mod:`tui.commands`), esc closes."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tui.commands import USAGE


class CommandLine(ModalScreen[str | None]):
    DEFAULT_CSS = """
    CommandLine { align: left bottom; background: $background 30%; }
    #command-box { dock: bottom; height: auto; width: 100%; background: $surface; padding: 0 1; }
    #command-help { color: $text-muted; height: auto; }
    #command-input { border: none; height: 1; padding: 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="command-box"):
            yield Static("\n".join(USAGE.values()), id="command-help", markup=False)
            yield Input(":", placeholder=":command (esc closes)", id="command-input")

    def on_mount(self) -> None:
        box = self.query_one("#command-input", Input)
        box.focus()
        box.cursor_position = len(box.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)
