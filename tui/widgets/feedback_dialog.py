"""The dialog that asks for a comment when an operator labels an insight a true fault or a false alarm."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from tui.models import FeedbackAction, InsightRow
from tui.widgets.fmt import num, stamp

TITLES = {
    FeedbackAction.ACK: "Acknowledge",
    FeedbackAction.TRUE_FAULT: "Label as TRUE FAULT",
    FeedbackAction.FALSE_ALARM: "Label as FALSE ALARM",
}


class FeedbackDialog(ModalScreen[str | None]):
    """Returns the comment (possibly empty) on save, None on cancel."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]  # noqa: RUF012

    def __init__(self, insight: InsightRow, action: FeedbackAction) -> None:
        super().__init__()
        self.insight = insight
        self.action = action

    def compose(self) -> ComposeResult:
        i = self.insight
        with Vertical(id="feedback-box"):
            yield Static(f"[b]{TITLES[self.action]}[/b]", id="feedback-title")
            yield Static(
                f"{stamp(i.ts)} UTC  {i.asset}\n{i.model} {i.model_version}  score {num(i.score)}"
                f" / threshold {num(i.threshold)}  severity {i.severity}",
                markup=False,
            )
            yield Input(placeholder="comment (what you saw, what you did)", id="comment", max_length=2000)
            with Horizontal(id="feedback-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#comment", Input).focus()

    @on(Input.Submitted, "#comment")
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        self.dismiss(self.query_one("#comment", Input).value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
