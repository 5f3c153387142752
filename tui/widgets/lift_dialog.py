"""The dialog that asks why a suppression is lifted: the reason is required, as for
``edge models suppress lift --reason``, and kept in the audit event the database writes."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

MAX_REASON = 2000


class LiftDialog(ModalScreen[str | None]):
    """Returns the reason on save, None on cancel; an empty reason is refused in place."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]  # noqa: RUF012

    def __init__(self, suppression_id: int, summary: str) -> None:
        super().__init__()
        self.suppression_id = suppression_id
        self.summary = summary

    def compose(self) -> ComposeResult:
        with Vertical(id="feedback-box"):
            yield Static(f"[b]Lift suppression #{self.suppression_id}[/b]", id="feedback-title")
            yield Static(f"{self.summary}\nrepeats raise alarms and reach MES again", markup=False)
            yield Input(placeholder="why (kept in the audit)", id="lift-reason", max_length=MAX_REASON)
            yield Static("", id="lift-error", markup=False)
            with Horizontal(id="feedback-buttons"):
                yield Button("Lift", variant="warning", id="lift")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#lift-reason", Input).focus()

    @on(Input.Submitted, "#lift-reason")
    @on(Button.Pressed, "#lift")
    def _lift(self) -> None:
        reason = self.query_one("#lift-reason", Input).value.strip()
        if not reason:
            self.query_one("#lift-error", Static).update("say why: the reason is kept in the audit")
            return
        self.dismiss(reason)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
