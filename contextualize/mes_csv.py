"""Backfill past work orders from CSV.

Columns (header row, any order; extra columns are ignored)::

    work_order,scope,start,end,product,batch
    WO-1001,acme/plant1/packaging/line2,2026-03-02T06:00:00Z,2026-03-02T09:30:00Z,SKU-42,B-7

``end`` empty = still running; ``product`` and ``batch`` (or ``lot``) optional. Times are ISO 8601; a time
without an offset is taken as UTC. Each row becomes a ``work_order_started`` event at ``start`` and, with an
``end``, a ``work_order_completed`` at ``end`` (ids ``csv:<work_order>:start|end``, so importing the same file
twice changes nothing and a fixed file replaces what the first import set). Events go through the same path
as live MES events: store, ``mes_context``, relabel of stored samples and insights, audit events.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contextualize.mes_events import MesEvent, MesEventError, MesEventType, normalize_scope, parse_ts

REQUIRED_COLUMNS = ("work_order", "scope", "start")


@dataclass
class CsvImportReport:
    rows: int = 0
    events: int = 0
    changes: int = 0
    samples_relabelled: int = 0
    insights_relabelled: int = 0
    errors: list[str] = field(default_factory=list)


def read_work_orders(path: Path) -> tuple[list[MesEvent], list[str]]:
    """Events from a work-order CSV, sorted by time, and one message per bad row (``file:line: why``)."""
    events: list[MesEvent] = []
    errors: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (have: {', '.join(header)})")
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k}
            try:
                events.extend(_row_events(row))
            except MesEventError as exc:
                errors.append(f"{path}:{line}: {exc.detail}")
    events.sort(key=lambda e: (e.ts_us, e.type != MesEventType.WORK_ORDER_COMPLETED))
    return events, errors


def _row_events(row: dict[str, str]) -> Iterator[MesEvent]:
    wo = row.get("work_order", "")
    if not wo:
        raise MesEventError("missing_field", "work_order is empty")
    scope = normalize_scope(row.get("scope", ""))
    start = parse_ts(row.get("start", ""), assume_utc=True)
    end = parse_ts(row["end"], assume_utc=True) if row.get("end") else None
    if end is not None and end <= start:
        raise MesEventError("bad_range", f"end {row['end']} is not after start {row['start']}")
    product = row.get("product") or None
    batch = row.get("batch") or row.get("lot") or None
    yield MesEvent(
        MesEventType.WORK_ORDER_STARTED,
        start,
        scope,
        f"csv:{wo}:start",
        work_order=wo,
        product=product,
        batch=batch,
    )
    if end is not None:
        yield MesEvent(MesEventType.WORK_ORDER_COMPLETED, end, scope, f"csv:{wo}:end", work_order=wo)


def import_csv(conn: Any, path: Path, *, relabel: bool = True, source: str = "csv-import") -> CsvImportReport:
    """Import ``path`` into the historian behind ``conn`` (autocommit psycopg connection), one transaction
    per event. The store is loaded with the whole history first, so backfilled intervals meet what is
    there."""
    from contextualize.mes_intake import apply_event
    from contextualize.mes_relabel import HistorianColumns
    from contextualize.mes_store_sql import load_store

    events, errors = read_work_orders(path)
    report = CsvImportReport(rows=len({e.event_id.rsplit(":", 1)[0] for e in events}), errors=errors)
    store = load_store(conn, history_days=365_000)
    columns = HistorianColumns.probe(conn)
    for ev in events:
        res = apply_event(conn, store, ev, source=source, relabel_rows=relabel, columns=columns)
        report.events += 1
        report.changes += len(res.changes)
        report.samples_relabelled += res.report.samples
        report.insights_relabelled += res.report.insights
    return report
