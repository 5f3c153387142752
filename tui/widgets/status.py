"""The one-line connection status every screen shows above its footer."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from tui.widgets.fmt import clock


class StatusBar(Static):
    """"● historian connected · broker up · updated 12:00:01 UTC", or a clear DISCONNECTED with the reason."""

    DEFAULT_CSS = """
    StatusBar { height: 1; padding: 0 1; background: $panel; }
    StatusBar.-down { background: $error; color: $text; }
    """

    def show(self, *, connected: bool, error: str | None, broker: str | None, updated: datetime | None,
             operator: str) -> None:
        text = Text()
        if connected:
            text.append("● historian connected", style="bold")
            self.remove_class("-down")
        else:
            text.append("○ DISCONNECTED", style="bold")
            if error:
                text.append(f": {error}")
            text.append(" (reconnecting)")
            self.add_class("-down")
        if broker is not None:
            text.append(f" · broker {broker}")
        text.append(f" · updated {clock(updated)} UTC · {operator}")
        self.update(text)
