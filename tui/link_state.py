"""The connection state the status line shows: the app holds it as a reactive, the status bar watches it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LinkState:
    connected: bool = False
    error: str | None = "connecting"
    updated: datetime | None = None
    broker: str | None = None  # None: no broker configured; else "unknown", "up" or "down"
    operator: str = ""
