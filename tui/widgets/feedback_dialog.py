"""The dialog that asks for a comment when an operator labels an insight a true fault or a false alarm; on a
false alarm it also offers to suppress repeats (same equipment, same leading features) for N hours."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from tui.feedback import parse_hours
from tui.models import FeedbackAction, InsightRow
from tui.widgets.fmt import num, stamp

TITLES = {
    FeedbackAction.ACK: "Acknowledge",
    FeedbackAction.TRUE_FAULT: "Label as TRUE FAULT",
    FeedbackAction.FALSE_ALARM: "Label as FALSE ALARM",
}


@dataclass(frozen=True)
class FeedbackChoice:
    comment: str
    suppress_hours: float | None = None  # only offered on a false alarm


class FeedbackDialog(ModalScreen[FeedbackChoice | None]):
    """Returns the comment (possibly empty) and the suppression asked for on save, None on cancel."""

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
            if self.action is FeedbackAction.FALSE_ALARM:
                lead = f" (leading: {i.top_features})" if i.top_features else ""
                yield Static(f"suppress repeats on this equipment with the same leading features{lead}",
                             markup=False, id="suppress-help")
                yield Input(placeholder="suppress repeats for N h (empty: do not suppress)",
                            id="suppress-hours", max_length=8)
                yield Static("", id="suppress-error", markup=False)
            with Horizontal(id="feedback-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#comment", Input).focus()

    @on(Input.Submitted, "#comment")
    @on(Input.Submitted, "#suppress-hours")
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        hours: float | None = None
        if self.action is FeedbackAction.FALSE_ALARM:
            try:
                hours = parse_hours(self.query_one("#suppress-hours", Input).value)
            except ValueError as exc:
                self.query_one("#suppress-error", Static).update(str(exc))
                return
        self.dismiss(FeedbackChoice(self.query_one("#comment", Input).value, hours))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
