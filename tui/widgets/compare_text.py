"""The models screen's compare panel as text: a shadow run's champion against its challenger (agreement,
alarm rates, precision and recall against the engineers' labels), total and per equipment."""

from __future__ import annotations

from tui.lifecycle_source import CompareBlock, CompareView
from tui.widgets.fmt import count, short_asset, stamp


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f} %"


def _role_line(name: str, b: CompareBlock) -> str:
    f = b.champion if name == "champion" else b.challenger
    return (f"  {name:10} alarm rate {pct(f.alarm_rate):>8}  precision {pct(f.precision):>8}"
            f"  recall {pct(f.recall):>8}")


def compare_text(view: CompareView) -> str:
    period = f"{stamp(view.since)} .. {stamp(view.until)} UTC"
    if view.total is None:
        have = (f"champion v{view.champion_version}" if view.champion_version else "no champion insights")
        if view.challenger_version:
            have += f", challenger v{view.challenger_version} (no window scored by both)"
        return (f"{view.model}: nothing to compare over {period}: {have}. A challenger runs in shadow after "
                f"`edge models alias {view.model} VERSION challenger --reason ...`")
    t = view.total
    lines = [
        f"{view.model}: champion v{view.champion_version} vs challenger v{view.challenger_version}, {period}",
        f"  {count(view.paired_windows)} paired windows ({count(t.windows)} ungated), agreement "
        f"{pct(t.agreement)}, {count(view.true_fault_periods)} true-fault periods labelled",
        _role_line("champion", t),
        _role_line("challenger", t),
    ]
    for asset, b in view.by_asset:
        lines.append(f"  {short_asset(asset)}: agreement {pct(b.agreement)}, alarm rate champion "
                     f"{pct(b.champion.alarm_rate)} challenger {pct(b.challenger.alarm_rate)}")
    return "\n".join(lines)
