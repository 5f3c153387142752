"""The models screen's compare panel as text: a shadow run's champion against its challenger over the chosen
period (agreement, alarm rates, precision and recall against the engineers' labels, detection delays), total
and for one slice (shift, product or equipment), as ``edge models compare`` computes them."""

from __future__ import annotations

from tui.compare_view import SLICE_KEYS, CompareBlock, CompareView
from tui.widgets.fmt import count, short_asset, stamp


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f} %"


def _role_line(name: str, b: CompareBlock, delays: tuple[float | None, ...]) -> str:
    f = b.champion if name == "champion" else b.challenger
    found = [d for d in delays if d is not None]
    delay = "no labelled fault" if not delays else (
        f"delay {', '.join(f'{d:g} s' for d in found) or '-'}; missed {len(delays) - len(found)}")
    return (f"  {name:10} alarm rate {pct(f.alarm_rate):>8}  precision {pct(f.precision):>8}"
            f"  recall {pct(f.recall):>8}  {delay}")


def _delay(delays: tuple[float | None, ...]) -> str:
    found = [d for d in delays if d is not None]
    return f"{', '.join(f'{d:g} s' for d in found) or '-'} ({len(delays) - len(found)} missed)"


def _slice_line(value: str, b: CompareBlock) -> str:
    c, h = b.champion, b.challenger
    line = (f"  {value:>14}: {count(b.windows)} w, agree {pct(b.agreement)}, alarms {pct(c.alarm_rate)} / "
            f"{pct(h.alarm_rate)}, prec {pct(c.precision)} / {pct(h.precision)}, rec {pct(c.recall)} / "
            f"{pct(h.recall)}")
    delays = dict(b.delays_s)
    if any(delays.values()):  # only where a labelled fault began in this slice
        line += f", delay {_delay(delays.get('champion', ()))} / {_delay(delays.get('challenger', ()))}"
    return line


def compare_text(view: CompareView, period: str = "24 h", slice_key: str = "shift") -> str:
    span = f"last {period}: {stamp(view.since)} .. {stamp(view.until)} UTC"
    if view.total is None:
        why = view.message or "nothing to compare"
        return f"{view.model}, {span}\n  {why}\n  [p] period  [v] slice"
    t = view.total
    label = dict(SLICE_KEYS).get(slice_key, slice_key)
    lines = [
        f"{view.model}: champion v{view.champion_version} vs challenger v{view.challenger_version}, {span}",
        f"  {count(view.paired_windows)} paired windows ({count(t.windows)} ungated), agreement "
        f"{pct(t.agreement)}, {count(view.true_fault_periods)} true-fault periods labelled",
        _role_line("champion", t, view.delays("champion")),
        _role_line("challenger", t, view.delays("challenger")),
        f"  by {label} (champion / challenger)  [p] period  [v] slice",
    ]
    rows = view.slice(slice_key)
    if not rows:
        lines.append(f"  no {label} in the windows' context")
    for value, b in rows:
        lines.append(_slice_line(short_asset(value) if slice_key == "asset" else value, b))
    return "\n".join(lines)
