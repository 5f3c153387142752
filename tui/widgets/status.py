"""The one-line connection status every screen shows above its footer."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.link_state import LinkState
from tui.widgets.fmt import clock


class StatusBar(Static):
    """"● historian connected · broker up · updated 12:00:01 UTC", or a clear DISCONNECTED with the reason.

    It watches the app's reactive ``link`` (a :class:`LinkState`) and redraws itself whenever that changes.
    """

    DEFAULT_CSS = """
    StatusBar { height: 1; padding: 0 1; background: $panel; }
    StatusBar.-down { background: $error; color: $text; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "link", self.show_link)

    def show_link(self, link: LinkState) -> None:
        text = Text()
        if link.connected:
            text.append("● historian connected", style="bold")
            self.remove_class("-down")
        else:
            text.append("○ DISCONNECTED", style="bold")
            if link.error:
                text.append(f": {link.error}")
            text.append(" (reconnecting)")
            self.add_class("-down")
        if link.broker is not None:
            text.append(f" · broker {link.broker}")
        text.append(f" · updated {clock(link.updated)} UTC · {link.operator}")
        self.update(text)
