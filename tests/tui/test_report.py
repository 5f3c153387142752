"""The shift report from a real historian: the figures checked against the rows the fixture wrote, as
Markdown, as HTML, and through ``edge report shift``."""

from __future__ import annotations

import asyncio
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest

from edge.app.cli import main
from tests.fixtures.tui_support import FIXED_NOW
from tests.tui.workbench_support import LINE2, NEIGHBOUR, TROUBLED, Workbench, make_workbench
from tui.alarm_models import ShiftReport
from tui.historian_source import HistorianSource
from tui.report_render import html_page, markdown

DAY = FIXED_NOW.date()


@pytest.fixture
def workbench(pg_dsn: str) -> Workbench:
    return make_workbench(pg_dsn)


def read(dsn: str, line: str, shift: str | None = None) -> ShiftReport:
    async def go() -> ShiftReport:
        source = HistorianSource(dsn)
        try:
            return await source.shift_report(line, DAY, shift)
        finally:
            await source.close()

    return asyncio.run(go())


def expected(admin_dsn: str) -> tuple[Counter[str], Counter[str]]:
    """Alarms per equipment of line 2 and their latest labels, straight from the tables."""
    with psycopg.connect(admin_dsn) as conn:
        rows = conn.execute(
            """SELECT i.asset, (SELECT action FROM operator_feedback f WHERE f.insight_id = i.insight_id
                                ORDER BY f.ts DESC, f.id DESC LIMIT 1)
               FROM insights i WHERE i.asset LIKE %s AND i.severity = 'alarm'""", (LINE2 + "/%",)).fetchall()
    return Counter(a for a, _ in rows), Counter(label or "none" for _, label in rows)


def test_shift_report_counts_labels_and_changes(workbench: Workbench) -> None:
    r = read(workbench.historian.reader_dsn, "line2")
    per_asset, labels = expected(workbench.historian.admin_dsn)
    assert r.line == LINE2
    assert r.alarms == sum(per_asset.values()) and r.alarms > 0
    assert {t.asset: t.alarms for t in r.equipment} == dict(per_asset)
    assert r.equipment[0].asset == TROUBLED  # most alarms first
    assert {k: v for k, v in r.labels.items() if v} == dict(labels)
    assert r.labels["true_fault"] == r.labels["false_alarm"] == 1
    assert r.false_alarm_rate == 0.5
    assert 1 <= r.episodes <= r.alarms
    changes = [(c.scope, c.key, c.previous, c.value) for c in r.changes]
    assert (LINE2, "product", "P-HINGE-B", "P-HINGE-C") in changes
    assert ("acme/plant1", "shift", "A", "B") in changes  # a site-wide change reaches the line
    # a full path names the same line; another shift has none of these alarms
    assert read(workbench.historian.reader_dsn, LINE2).alarms == r.alarms
    assert read(workbench.historian.reader_dsn, "line2", shift="C").alarms == 0
    assert read(workbench.historian.reader_dsn, "line2", shift="A").alarms == r.alarms


class Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.tags: Counter[str] = Counter()
        self._in = False

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags[tag] += 1
        self._in = tag in ("td", "th")

    def handle_endtag(self, tag: str) -> None:
        self._in = False

    def handle_data(self, data: str) -> None:
        if self._in:
            self.cells.append(data)


def test_markdown_and_html_say_the_same(workbench: Workbench) -> None:
    r = read(workbench.historian.reader_dsn, "line2")
    md = markdown(r)
    assert md.startswith(f"# Shift report: {LINE2}, {DAY.isoformat()}\n")
    assert "| false-alarm rate | 50% (1 of 2 labelled alarms) |" in md
    assert f"| {TROUBLED} | {r.equipment[0].alarms} |" in md
    page = html_page(r)
    parser = Cells()
    parser.feed(page)
    assert parser.tags["html"] == 1 and parser.tags["table"] == 3 and parser.tags["script"] == 0
    assert NEIGHBOUR in parser.cells and "P-HINGE-C" in parser.cells
    assert "50% (1 of 2 labelled alarms)" in parser.cells


def test_edge_report_shift_command(
    workbench: Workbench, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "shift.html"
    rc = main(["report", "shift", "--line", "line2", "--date", DAY.isoformat(), "--format", "html", "-o",
               str(out), "--dsn", workbench.historian.reader_dsn])
    assert rc == 0
    assert out.read_text().startswith("<!DOCTYPE html>") and TROUBLED in out.read_text()
    rc = main(["report", "shift", "--line", "line2", "--date", DAY.isoformat(), "--shift", "A",
               "--dsn", workbench.historian.reader_dsn])
    assert rc == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# Shift report: {LINE2}, {DAY.isoformat()}, shift A")
    assert main(["report", "shift", "--line", "line2", "--date", "29.11.2026",
                 "--dsn", workbench.historian.reader_dsn]) == 2
    assert "--date '29.11.2026' is not a date" in capsys.readouterr().err
    assert main(["report", "shift", "--line", "line2", "--date", DAY.isoformat(), "--timeout", "2",
                 "--dsn", "postgresql://edge_reader@127.0.0.1:1/none"]) == 1
    assert "the historian did not answer" in capsys.readouterr().err
