"""The ``/`` filter of a list screen: an input above the list; enter applies (empty clears), esc closes.

A screen yields one, binds ``/`` to ``open()``, and re-renders its rows on :class:`FilterBox.Applied` with
:func:`matches`.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input


def matches(query: str, *cells: object) -> bool:
    """Every word of ``query`` appears (case-insensitive) in one of the row's cells."""
    text = " ".join("" if c is None else str(c) for c in cells).lower()
    return all(word in text for word in query.lower().split())


class FilterBox(Input):
    DEFAULT_CSS = "FilterBox { dock: top; margin: 0 1; }"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close", show=False)]

    class Applied(Message):
        def __init__(self, query: str) -> None:
            super().__init__()
            self.query = query

    def __init__(self, what: str = "rows", id: str | None = None) -> None:
        self.what = what
        super().__init__(placeholder=self._hint(""), id=id)
        self.applied = ""
        self._hide()

    def _hint(self, now: str) -> str:
        return (f"filter {self.what} (now {now or '*'}): words to match; enter applies, empty clears, "
                "esc closes")

    def _hide(self) -> None:
        # hidden and unfocusable while closed, so a screen's auto focus never lands in it
        self.display = False
        self.can_focus = False

    def open(self) -> None:
        self.placeholder = self._hint(self.applied)
        self.value = ""
        self.display = True
        self.can_focus = True
        self.focus()

    def action_close(self) -> None:
        self._hide()
        self.screen.focus_next()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.applied = event.value.strip()
        self._hide()
        self.screen.focus_next()
        self.post_message(self.Applied(self.applied))
