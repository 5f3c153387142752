"""A signal against its training band, as text: a few rows of one character per time bucket.

``█`` marks the bucket's value, ``░`` the band (training level ± BAND_SD standard deviations of the
window means), and the axis below marks the scored window with ``━`` (outside it ``─``), so colour is never
the only cue. Values above the band are drawn in red as well.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from tui.alarm_models import SignalTrace
from tui.widgets.fmt import num

BAND_SD = 2.0


def band_plot(trace: SignalTrace, start: datetime, end: datetime, width: int = 60, height: int = 5) -> Text:
    values = list(trace.values)[-width:]
    times = list(trace.times)[-width:]
    unit = f" {trace.unit}" if trace.unit else ""
    text = Text(f"{trace.signal}{unit}", style="bold")
    lo_band = hi_band = None
    if trace.band_mean is not None:
        sd = trace.band_sd or 0.0
        lo_band, hi_band = trace.band_mean - BAND_SD * sd, trace.band_mean + BAND_SD * sd
        text.append(f"   band {num(trace.band_mean, 2)} ± {num(BAND_SD * sd, 2)} (training level ± 2 sd)",
                    style="dim")
    if not values:
        text.append("\n  no samples around the window", style="dim")
        return text
    text.append(f"   last {num(values[-1], 2)}{unit}, min {num(min(values), 2)}, max {num(max(values), 2)}\n")
    top = max([*values, *(x for x in (hi_band,) if x is not None)])
    bottom = min([*values, *(x for x in (lo_band,) if x is not None)])
    span = (top - bottom) or 1.0

    def row_of(v: float) -> int:
        return min(height - 1, max(0, int((v - bottom) / span * (height - 1) + 0.5)))

    cells = [row_of(v) for v in values]
    band = (row_of(lo_band), row_of(hi_band)) if lo_band is not None and hi_band is not None else None
    for r in range(height - 1, -1, -1):
        label = num(bottom + span * r / (height - 1), 1) if r in (0, height - 1) else ""
        text.append(f"{label:>8} │", style="dim")
        for c, v in zip(cells, values, strict=True):
            if c == r:
                over = hi_band is not None and v > hi_band
                text.append("█", style="bold red3" if over else "")
            elif band is not None and band[0] <= r <= band[1]:
                text.append("░", style="green3")
            else:
                text.append(" ")
        text.append("\n")
    text.append(" " * 9 + "└", style="dim")
    for t in times:
        text.append("━" if start <= t <= end else "─", style="bold" if start <= t <= end else "dim")
    return text
