"""The ``:`` command line: what an engineer types, parsed into a :class:`Command` (no Textual here).

``:asset line2/press3`` opens that equipment, ``:since 2h`` shows the insights of the last two hours,
``:label f [comment]`` labels the selected insight, ``:report [LINE] [DATE] [SHIFT]`` opens the shift report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from tui.models import FeedbackAction

USAGE: dict[str, str] = {
    "asset": ":asset PATH   open the equipment whose path ends with PATH (line2/press3)",
    "since": ":since 2h     insights of the last 2 hours (s, m, h, d); :since all shows all",
    "label": ":label a|t|f [comment]   ack, true fault or false alarm on the selected insight",
    "report": ":report [LINE] [YYYY-MM-DD] [SHIFT]   the shift report",
    "help": ":help         keys and commands",
}
LABELS: dict[str, FeedbackAction] = {
    "a": FeedbackAction.ACK, "ack": FeedbackAction.ACK,
    "t": FeedbackAction.TRUE_FAULT, "true": FeedbackAction.TRUE_FAULT,
    "true_fault": FeedbackAction.TRUE_FAULT,
    "f": FeedbackAction.FALSE_ALARM, "false": FeedbackAction.FALSE_ALARM,
    "false_alarm": FeedbackAction.FALSE_ALARM,
}
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")


class CommandError(ValueError):
    """What was typed is not a command; the message says what would be."""


@dataclass(frozen=True)
class Command:
    name: str
    text: str = ""  # the argument as typed (asset path, comment)
    seconds: float | None = None  # :since
    action: FeedbackAction | None = None  # :label
    line: str | None = None  # :report
    day: date | None = None
    shift: str | None = None


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip().lower())
    if not m or float(m.group(1)) <= 0:
        raise CommandError(f"not a duration: {text!r} (try {USAGE['since']})")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def parse(text: str) -> Command:
    words = text.strip().lstrip(":").split()
    if not words:
        raise CommandError("empty command; commands: " + ", ".join(f":{n}" for n in USAGE))
    name, args = words[0].lower(), words[1:]
    if name == "asset":
        if len(args) != 1:
            raise CommandError(f"usage: {USAGE['asset']}")
        return Command("asset", args[0].strip("/"))
    if name == "since":
        if len(args) != 1:
            raise CommandError(f"usage: {USAGE['since']}")
        return Command("since", args[0], None if args[0].lower() == "all" else parse_duration(args[0]))
    if name == "label":
        if not args or args[0].lower() not in LABELS:
            raise CommandError(f"usage: {USAGE['label']}")
        return Command("label", " ".join(args[1:]), action=LABELS[args[0].lower()])
    if name == "report":
        return _report(args)
    if name in ("help", "h", "?"):
        return Command("help")
    raise CommandError(f"unknown command :{name}; commands: " + ", ".join(f":{n}" for n in USAGE))


def _report(args: list[str]) -> Command:
    line = day = shift = None
    for arg in args:
        if re.match(r"^\d{4}-\d{2}-\d{2}$", arg):
            try:
                day = date.fromisoformat(arg)
            except ValueError:
                raise CommandError(f"not a date: {arg!r} (YYYY-MM-DD)") from None
        elif line is None:
            line = arg.strip("/")
        elif shift is None:
            shift = arg
        else:
            raise CommandError(f"usage: {USAGE['report']}")
    return Command("report", line=line, day=day, shift=shift)


def find_asset(query: str, paths: Iterable[str]) -> str | None:
    """The equipment path ``query`` names: one whose path ends with it (whole segments), else the one path
    that contains it; None when none or several do."""
    q = query.strip("/").lower()
    listed = sorted(set(paths))
    ends = [p for p in listed if p.lower() == q or p.lower().endswith("/" + q)]
    if len(ends) == 1:
        return ends[0]
    contains = [p for p in listed if q in p.lower()]
    return contains[0] if len(contains) == 1 else None
