"""A shift report (:class:`tui.alarm_models.ShiftReport`) as Markdown, and as one self-contained HTML page a
supervisor opens in a browser (no scripts, no external files; prints on one page)."""

from __future__ import annotations

import html

from tui.alarm_models import ShiftReport

LABEL_NAMES = (("true_fault", "true fault"), ("false_alarm", "false alarm"), ("ack", "acknowledged only"),
               ("none", "not looked at"))


def title(r: ShiftReport) -> str:
    shift = f", shift {r.shift}" if r.shift else ""
    return f"Shift report: {r.line}, {r.day.isoformat()}{shift}"


def rate_text(r: ShiftReport) -> str:
    rate = r.false_alarm_rate
    labelled = r.labels.get("true_fault", 0) + r.labels.get("false_alarm", 0)
    if rate is None:
        return "n/a (no alarm labelled true fault or false alarm)"
    return f"{rate:.0%} ({r.labels.get('false_alarm', 0)} of {labelled} labelled alarms)"


def summary_rows(r: ShiftReport) -> list[tuple[str, str]]:
    return [
        ("period (UTC)", f"{r.period_start:%Y-%m-%d %H:%M} to {r.period_end:%Y-%m-%d %H:%M}"),
        ("alarms", f"{r.alarms} windows in {r.episodes} episodes"),
        ("warnings", str(r.warnings)),
        *((f"labelled {name}", str(r.labels.get(key, 0))) for key, name in LABEL_NAMES),
        ("false-alarm rate", rate_text(r)),
    ]


EQUIPMENT_HEAD = ("equipment", "alarms", "episodes", "true fault", "false alarm", "not labelled")
CHANGES_HEAD = ("time UTC", "scope", "what", "from", "to")


def equipment_rows(r: ShiftReport) -> list[tuple[str, ...]]:
    return [(t.asset, str(t.alarms), str(t.episodes), str(t.true_faults), str(t.false_alarms),
             str(t.unlabelled)) for t in r.equipment]


def change_rows(r: ShiftReport) -> list[tuple[str, ...]]:
    return [(f"{c.ts:%H:%M:%S}", c.scope, c.key, c.previous or "-", c.value) for c in r.changes]


def _md_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines.extend("| " + " | ".join(esc(c) for c in row) + " |" for row in rows)
    return lines


def markdown(r: ShiftReport) -> str:
    lines = [f"# {title(r)}", ""]
    lines += _md_table(("", ""), [(k, v) for k, v in summary_rows(r)])
    lines += ["", "## Top equipment", ""]
    lines += _md_table(EQUIPMENT_HEAD, equipment_rows(r)) if r.equipment else ["No alarms."]
    lines += ["", "## MES context changes", ""]
    lines += _md_table(CHANGES_HEAD, change_rows(r)) if r.changes else ["None."]
    return "\n".join(lines) + "\n"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#111}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #999;padding:.25em .6em;text-align:left}th{background:#eee}
td.n{text-align:right}h1{font-size:1.4em}h2{font-size:1.1em}"""


def _html_table(head: tuple[str, ...] | None, rows: list[tuple[str, ...]]) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells = "".join(f'<td class="n">{html.escape(c)}</td>' if c.isdigit()
                        else f"<td>{html.escape(c)}</td>" for c in row)
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def html_page(r: ShiftReport) -> str:
    t = html.escape(title(r))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{t}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>{t}</h1>",
        _html_table(None, [(k, v) for k, v in summary_rows(r)]),
        "<h2>Top equipment</h2>",
        _html_table(EQUIPMENT_HEAD, equipment_rows(r)) if r.equipment else "<p>No alarms.</p>",
        "<h2>MES context changes</h2>",
        _html_table(CHANGES_HEAD, change_rows(r)) if r.changes else "<p>None.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def render(r: ShiftReport, fmt: str) -> str:
    if fmt == "md":
        return markdown(r)
    if fmt == "html":
        return html_page(r)
    raise ValueError(f"unknown report format {fmt!r} (md or html)")
