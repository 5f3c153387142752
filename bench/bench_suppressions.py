"""The JetStream sink's suppression question per insights batch (``HistorianSuppressions.suppressed``),
against the bare round trip to the same PostgreSQL, in the same run.

A scratch database gets the historian's schema and ``--suppressions`` active suppressions (each from a
labelled false alarm on its own press, as the TUI records them). Each call asks about one insights batch of
``--rows`` rows (a tick of that many presses), every row alarming (the worst case: ok rows are never asked
about), a tenth of them on a suppressed press with the suppression's leading features. Reported: p50 and p99
of ``suppressed()`` (the product's call: columns taken from Arrow, the query, the indices mapped back), of
the same query with its arguments already built, and of ``SELECT 1`` on the same connection (the floor).

    flock /tmp/fe-cpu.lock .venv/bin/python bench/bench_suppressions.py [--rows 60] [--suppressions 20] \
        [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DB = "fe_bench_suppressions"
LEAD = ["vibration_rms", "temperature_mean", "current_rms"]
T = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def press(i: int) -> str:
    return f"acme/plant1/line{i // 3 + 1}/press{i % 3 + 1}"


def scratch_db(dsn: str, suppressions: int) -> str:
    import psycopg

    from edge.sinks.historian.admin import init_historian
    from edge.sinks.historian.settings import HistorianSettings
    from tests.inference.suppression_support import Row, label, write_insights

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    db = urlunparse(urlparse(dsn)._replace(path=f"/{DB}"))
    with psycopg.connect(db, autocommit=True) as conn:
        init_historian(conn, HistorianSettings.model_validate({}))
    ids = write_insights(db, [Row(T + timedelta(seconds=i), LEAD, asset=press(i))
                              for i in range(suppressions)])
    with psycopg.connect(db, autocommit=True) as conn:
        for insight_id in ids:
            conn.execute("SELECT record_alarm_suppression(%s, 'anna', 4, 'bench')", (label(db, insight_id),))
    return db


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q / 100))]


async def measure(db: str, rows: int, suppressions: int, calls: int) -> dict[str, Any]:
    from edge.sinks.jetstream.suppressions import SUPPRESSED_SQL, HistorianSuppressions, question
    from tests.inference.suppression_support import Row, insights_batch

    other = ["pressure_max", "current_mean", "temperature_std"]
    batch = insights_batch([
        Row(T + timedelta(minutes=5, seconds=i), LEAD if i % 10 == 0 else other,
            asset=press(i % max(1, suppressions) if i % 10 == 0 else suppressions + i))
        for i in range(rows)])
    sup = HistorianSuppressions(db, timeout_s=5.0)
    found = await sup.suppressed(batch)  # connects, and says what the rule matched
    _, args = question(batch)
    conn = sup._conn
    product, query, floor = [], [], []
    for _ in range(calls):  # interleaved
        t0 = time.perf_counter()
        await sup.suppressed(batch)
        product.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await (await conn.execute(SUPPRESSED_SQL, args)).fetchall()
        query.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await (await conn.execute("SELECT 1")).fetchall()
        floor.append(time.perf_counter() - t0)
    await sup.close()

    def ms(v: list[float]) -> dict[str, float]:
        return {"p50_ms": round(pct(v, 50) * 1e3, 3), "p99_ms": round(pct(v, 99) * 1e3, 3)}

    return {"rows": rows, "suppressions": suppressions, "calls": calls, "suppressed_rows": len(found),
            "suppressed()": ms(product), "the query alone": ms(query), "SELECT 1": ms(floor),
            "suppressed() / SELECT 1 (p50)": round(pct(product, 50) / pct(floor, 50), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=os.environ.get("FE_BENCH_PG_DSN",
                                                    "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--rows", type=int, default=60)
    ap.add_argument("--suppressions", type=int, default=20)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    db = scratch_db(args.dsn, args.suppressions)
    try:
        print(json.dumps(asyncio.run(measure(db, args.rows, args.suppressions, args.calls)), indent=2))
    finally:
        import psycopg

        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
