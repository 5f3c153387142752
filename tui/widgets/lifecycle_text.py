"""Text of the models screen's lifecycle panels: retraining runs (state, start, the lookback window, the
windows used, the result) and the rows of the active-suppressions table."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from tui.models import RetrainRow, SuppressionRow
from tui.widgets.fmt import age, count, short_asset, stamp

STATE_STYLE = {"running": "bold yellow", "done": "green", "failed": "bold red3"}
STATE_MARK = {"running": "…", "done": "✓", "failed": "✗"}  # read without colour


def retrain_line(r: RetrainRow, now: datetime) -> Text:
    line = Text("  ")
    line.append(f"{STATE_MARK.get(r.state, '?')} {r.state:7}", style=STATE_STYLE.get(r.state, ""))
    line.append(f" {r.model} ({r.scope}, {r.trigger}) started {stamp(r.started)} UTC "
                f"({age(now, r.started)} ago)")
    if r.since is not None and r.until is not None:
        line.append(f", lookback {stamp(r.since)} .. {stamp(r.until)}")
    if r.state == "done":
        line.append(f": v{r.version} from {count(r.windows)} windows"
                    + (f" in {r.seconds:g} s" if r.seconds is not None else "")
                    + (f" (based on v{r.based_on})" if r.based_on else "") + ", now the challenger")
    elif r.state == "failed":
        line.append(f": {r.error or 'failed'}")
    return line


def retrain_text(rows: list[RetrainRow], now: datetime) -> Text:
    text = Text("Retraining (newest first)\n", style="bold")
    for i, r in enumerate(rows):
        if i:
            text.append("\n")
        text.append_text(retrain_line(r, now))
    return text


def suppression_cells(s: SuppressionRow, now: datetime) -> tuple[str, ...]:
    left = s.until - now
    hours = max(left.total_seconds(), 0.0) / 3600
    return (f"#{s.id}", short_asset(s.asset), s.model, ", ".join(s.features),
            f"{stamp(s.until)} ({hours:.1f} h)", s.who, count(s.suppressed), s.comment)


def suppression_summary(s: SuppressionRow) -> str:
    return (f"{s.asset} {s.model}, leading [{', '.join(s.features)}], until {stamp(s.until)} UTC, "
            f"by {s.who}; {count(s.suppressed)} repeats kept from MES")
