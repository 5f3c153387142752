"""Text helpers: severities with a symbol (so colour is never the only cue), ages, numbers, sparklines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text

from tui.models import severity_rank

# Colours readable on both a light and a dark background.
_SEVERITY_STYLE = {
    -1: ("  -  ", "dim"),
    0: ("✓ ok ", "green3"),
    1: ("i info", "dodger_blue1"),
    2: ("! warn", "dark_orange3"),
    3: ("▲ high", "bold red3"),
    4: ("▲ CRIT", "bold red3"),
}
_BLOCKS = "▁▂▃▄▅▆▇█"


def severity_text(severity: str | None, gated: bool = False, suppressed: bool = False) -> Text:
    """The severity with its symbol; a gated window that would read "ok" reads "? gap": its input was bad
    or missing, so nobody should take it for a healthy machine (a raised level stays: it was not cleared)."""
    rank = severity_rank(severity)
    if gated and rank <= 0:
        return Text("? gap ", style="dark_orange3")
    if suppressed:  # a repeat of a labelled false alarm: shown, but not as an alarm (MES never got it)
        return Text("~ supp", style="dim")
    label, style = _SEVERITY_STYLE[max(-1, min(4, rank))]
    if severity is not None and rank == 2 and severity.lower() not in ("warning", "warn"):
        label = f"! {severity[:4]}"
    elif severity is not None and rank == 3:
        label = f"▲ {severity[:5]}"
    return Text(label, style=style)


def age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    s = (now - then).total_seconds()
    if s < 0:
        return "future"
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 86400:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def age_text(now: datetime, then: datetime | None, stale_s: float = 60.0) -> Text:
    text = age(now, then)
    if then is None or (now - then).total_seconds() > stale_s:
        return Text(text, style="dark_orange3")
    return Text(text)


def quality_text(good_fraction: float | None) -> Text:
    if good_fraction is None:
        return Text("q  -", style="dim")
    pct = good_fraction * 100
    style = "" if pct >= 95 else ("dark_orange3" if pct >= 80 else "bold red3")
    return Text(f"q{pct:3.0f}%", style=style)


def clock(ts: datetime | None) -> str:
    return ts.strftime("%H:%M:%S") if ts is not None else "--:--:--"


def stamp(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S") if ts is not None else "-"


def num(value: float | None, digits: int = 3) -> str:
    """A number for a table cell: at most ``digits`` decimals, trailing zeros dropped. Counts and large values
    are plain digits (never ``2e+04``: operators read counts); only tiny values use an exponent."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if value != value:  # NaN
        return "nan"
    if abs(value) >= 10_000:
        return f"{value:.0f}"
    if 0 < abs(value) < 10 ** -digits:
        return f"{value:.{digits}g}"
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def spark(values: Sequence[float], width: int = 20, lo: float | None = None, hi: float | None = None) -> str:
    """A one-line block sparkline of the last ``width`` values."""
    vals = [v for v in values if v == v][-width:]
    if not vals:
        return ""
    low = min(vals) if lo is None else lo
    high = max(vals) if hi is None else hi
    span = high - low
    if span <= 0:
        return _BLOCKS[0] * len(vals)
    out = []
    for v in vals:
        i = int((min(max(v, low), high) - low) / span * (len(_BLOCKS) - 1))
        out.append(_BLOCKS[i])
    return "".join(out)


def short_asset(path: str, parts: int = 3) -> str:
    """The end of an ISA-95 path that tells equipment apart on one site: line/cell/equipment."""
    return "/".join(path.split("/")[-parts:])


def plus_minus(mean: float, sd: float, digits: int = 2) -> str:
    """"61.2 ± 1.8": the spread with as many decimals as the level shows."""
    level = num(mean, digits)
    decimals = len(level.partition(".")[2])
    spread = f"{sd:.{decimals}f}" if sd == 0 or sd >= 10.0**-decimals else num(sd, digits + 2)
    return f"{level} ± {spread}"


def since_text(seconds: float) -> str:
    """A duration as typed on the command line: 90 -> "90s", 7200 -> "2h", 5400 -> "90m"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def count(n: int | float | None) -> str:
    """A count in plain digits: 20000 -> "20000" (never "2e+04", whatever its type)."""
    if n is None:
        return "-"
    return str(round(n))
