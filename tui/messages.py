"""What screens tell the app: they post these messages and the app handles them (screens never call the app).

Textual delivers a message posted on a screen to the screen first, then bubbles it up to the app.
"""

from __future__ import annotations

from textual.message import Message

from tui.models import FeedbackAction, InsightRow


class HistorianAnswered(Message):
    """A screen's read succeeded: the historian is connected."""


class HistorianDown(Message):
    """A screen's read could not be answered (down, slow): show disconnected."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class HistorianRefused(Message):
    """Connected, but the historian refused a read (schema not there yet, a permission)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class OpenEquipment(Message):
    """Show the equipment view of ``asset``."""

    def __init__(self, asset: str) -> None:
        super().__init__()
        self.asset = asset


class FeedbackRequested(Message):
    """The operator acked or labelled ``insight``; the app asks for a comment if needed and saves it."""

    def __init__(self, insight: InsightRow, action: FeedbackAction) -> None:
        super().__init__()
        self.insight = insight
        self.action = action


class OpenAlarm(Message):
    """Show the alarm detail (its explanation) of the insight ``insight_id``."""

    def __init__(self, insight_id: str) -> None:
        super().__init__()
        self.insight_id = insight_id


class LiftRequested(Message):
    """The engineer asked to lift suppression ``suppression_id`` (from the models screen); the app asks why
    and lifts it as the operator."""

    def __init__(self, suppression_id: int, summary: str) -> None:
        super().__init__()
        self.suppression_id = suppression_id
        self.summary = summary
