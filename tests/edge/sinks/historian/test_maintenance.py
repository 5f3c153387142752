"""Maintenance as edge_writer: fe_maintain_as_writer() (migration 0003) and the HistorianMaintenance
component.

Plain PostgreSQL through real logins as edge_writer / edge_reader (trust auth on the test server); the
TimescaleDB (PGlite) build through ``SET ROLE`` on its one session.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from edge.sinks.historian.admin import READER_ROLE, WRITER_ROLE, init_historian
from edge.sinks.historian.maintenance import HistorianMaintenance
from edge.sinks.historian.settings import HistorianSettings
from tests.fixtures.historian_helpers import as_user, denied
from tests.fixtures.services import free_port

TABLES = ("samples", "features", "insights", "events", "dead_letters")


def _regclass(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _part(table: str, d: date) -> str:
    return f"{table}_p{d:%Y%m%d}"


@pytest.fixture
def pg_historian(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An initialised plain-PostgreSQL historian (superuser autocommit connection), 3 days of partitions
    ahead, 30 days retention."""
    settings = HistorianSettings.model_validate({"partitions_ahead": 3, "retention": "30 days",
                                                 "ledger_keep": "2 days", "outbox_keep": "1 day"})
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn, settings, flavor="postgres")
        yield conn


def _drop_daily_partitions(conn: psycopg.Connection[Any]) -> None:
    """As if nothing had run maintenance for weeks: no daily partition covers today or later."""
    for (name,) in conn.execute("SELECT relname FROM pg_class WHERE relname ~ '_p[0-9]{8}$' "
                                "AND relkind = 'r'").fetchall():
        conn.execute(f'DROP TABLE "{name}"')


def _insert_sample(c: psycopg.Connection[Any], ts: datetime, tag: str) -> None:
    c.execute("INSERT INTO samples (ts, recv_ts, tag, value, quality, source) VALUES (%s, %s, %s, 1, 0, 's')",
              (ts, ts, tag))


def test_writer_maintenance_partitions_ahead_and_empties_default(
        pg_historian: psycopg.Connection[Any], pg_dsn: str) -> None:
    conn = pg_historian
    _drop_daily_partitions(conn)
    now = datetime.now(UTC)
    today = now.date()
    with psycopg.connect(as_user(pg_dsn, WRITER_ROLE), autocommit=True) as w:
        assert w.execute("SELECT current_user").fetchone() == (WRITER_ROLE,)
        _insert_sample(w, now, "today")
        _insert_sample(w, now + timedelta(days=1), "tomorrow")
        _insert_sample(w, now - timedelta(days=5), "five-days-ago")  # older than yesterday, within retention
        _insert_sample(w, now - timedelta(days=45), "expired")  # past the 30 days retention
        _insert_sample(w, now + timedelta(days=40), "far-future")  # beyond partitions_ahead: stays in default
        w.execute("INSERT INTO events (ts, kind, source, message) VALUES (%s, 'audit', 't', 'x')", (now,))
        where: dict[str, str] = dict(
            w.execute("SELECT tag, tableoid::regclass::text FROM samples").fetchall())
        assert set(where.values()) == {"samples_default"}

        report = w.execute("SELECT fe_maintain_as_writer()").fetchone()
        assert report is not None
        text = str(report[0])
        assert text.startswith("postgres: partitions created ")
        assert "expired rows deleted from default 1" in text
        assert "aggregates refreshed" in text

        # tomorrow + N (partitions_ahead = 3) and the day before today exist for every time table
        for table in TABLES:
            for offset in range(-1, 4):
                assert _regclass(w, _part(table, today + timedelta(days=offset))), (table, offset)
        where = dict(w.execute("SELECT tag, tableoid::regclass::text FROM samples").fetchall())
        assert where == {
            "today": _part("samples", today),
            "tomorrow": _part("samples", today + timedelta(days=1)),
            "five-days-ago": _part("samples", (now - timedelta(days=5)).date()),
            "far-future": "samples_default",
        }
        in_events = w.execute("SELECT tableoid::regclass::text FROM events").fetchone()
        assert in_events == (_part("events", today),)
        # the views hold what was there at the refresh
        n = w.execute("SELECT sum(n) FROM samples_1h").fetchone()
        assert n == (4,)

        # a second run has nothing to do
        again = w.execute("SELECT fe_maintain_as_writer()").fetchone()
        assert again is not None
        assert "partitions created 0 ahead and 0 for rows in default, dropped 0" in str(again[0])


def test_writer_maintenance_prunes_ledger_and_published_outbox(
        pg_historian: psycopg.Connection[Any], pg_dsn: str) -> None:
    conn = pg_historian
    conn.execute("INSERT INTO ingest_ledger (batch_id, kind, rows, committed_at) VALUES "
                 "('old', 'samples', 1, now() - INTERVAL '3 days'), ('new', 'samples', 1, now())")
    _insert_outbox(conn)
    with psycopg.connect(as_user(pg_dsn, WRITER_ROLE), autocommit=True) as w:
        report = w.execute("SELECT fe_maintain_as_writer()").fetchone()
        assert report is not None
        assert "ledger entries pruned 1" in str(report[0])
        assert "published outbox rows pruned 1" in str(report[0])
    assert conn.execute("SELECT batch_id FROM ingest_ledger").fetchall() == [("new",)]
    assert _outbox_left(conn) == ["published-recently", "unpublished-old"]


def _insert_outbox(conn: psycopg.Connection[Any]) -> None:
    """Three insights (the trigger fills the outbox): one published 2 days ago, one published just now, one
    never published although old. outbox_keep is 1 day."""
    for insight_id in ("published-old", "published-recently", "unpublished-old"):
        conn.execute(
            "INSERT INTO insights (insight_id, ts, asset, model, model_version, model_sha256, threshold, "
            "severity, window_start, window_end) VALUES (%s, now(), 'a', 'm', '1', 'x', 0.5, 'info', now(), "
            "now())", (insight_id,))
    conn.execute("UPDATE insights_outbox SET created_at = now() - INTERVAL '3 days'")
    conn.execute("UPDATE insights_outbox SET published_at = now() - INTERVAL '2 days' "
                 "WHERE insight_id = 'published-old'")
    conn.execute("UPDATE insights_outbox SET published_at = now() WHERE insight_id = 'published-recently'")


def _outbox_left(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT insight_id FROM insights_outbox ORDER BY 1").fetchall()]


def test_writer_still_cannot_run_ddl_or_the_helpers(pg_historian: psycopg.Connection[Any],
                                                    pg_dsn: str) -> None:
    conn = pg_historian
    row = conn.execute(
        "SELECT prosecdef, pg_get_userbyid(proowner), proconfig, "
        "has_function_privilege('edge_writer', p.oid, 'EXECUTE'), "
        "has_function_privilege('edge_reader', p.oid, 'EXECUTE'), "
        "coalesce(array_to_string(proacl, ','), '') FROM pg_proc p WHERE proname = 'fe_maintain_as_writer'"
    ).fetchone()
    assert row is not None
    secdef, owner, config, writer_may, reader_may, acl = row
    assert secdef and writer_may and not reader_may
    assert owner == conn.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
    assert "search_path=public, pg_temp" in config
    assert not any(entry.startswith("=") for entry in acl.split(","))  # nothing for PUBLIC
    tomorrow = datetime.now(UTC).date() + timedelta(days=30)
    with psycopg.connect(as_user(pg_dsn, WRITER_ROLE), autocommit=True) as w:
        assert denied(w, f"CREATE TABLE {_part('samples', tomorrow)} PARTITION OF samples FOR VALUES FROM "
                          f"('{tomorrow}') TO ('{tomorrow + timedelta(days=1)}')")
        assert denied(w, "ALTER TABLE samples DETACH PARTITION samples_default")
        assert denied(w, "DROP TABLE samples_default")
        assert denied(w, "DELETE FROM samples_default")
        assert denied(w, "DELETE FROM insights_outbox")
        assert denied(w, "REFRESH MATERIALIZED VIEW samples_1m")
        assert denied(w, "CREATE TABLE public.mine (x int)")
        # the helpers run only inside fe_maintain_as_writer(), as its owner
        assert denied(w, "SELECT fe_prune_outbox(INTERVAL '1 second')")
        assert denied(w, f"SELECT fe_partition_day('samples', 'ts', '{tomorrow}')")
        assert denied(w, "SELECT fe_drop_expired_partitions(INTERVAL '1 second')")
        # historian_meta (the function's settings) is init's alone
        assert denied(w, "UPDATE historian_meta SET value = '1 second' WHERE key = 'ledger_keep'")
        assert denied(w, "INSERT INTO historian_meta VALUES ('outbox_keep', '1 second')")
    with psycopg.connect(as_user(pg_dsn, READER_ROLE), autocommit=True) as r:
        assert denied(r, "SELECT fe_maintain_as_writer()")


def test_one_run_at_a_time(pg_historian: psycopg.Connection[Any], pg_dsn: str) -> None:
    conn = pg_historian
    conn.execute("SELECT pg_advisory_lock(1717895171)")
    try:
        with psycopg.connect(as_user(pg_dsn, WRITER_ROLE), autocommit=True) as w:
            assert w.execute("SELECT fe_maintain_as_writer()").fetchone() == (
                "skipped: historian maintenance is already running",)
    finally:
        conn.execute("SELECT pg_advisory_unlock(1717895171)")


def test_bad_setting_is_refused(pg_historian: psycopg.Connection[Any], pg_dsn: str) -> None:
    conn = pg_historian
    conn.execute("UPDATE historian_meta SET value = '0 seconds' WHERE key = 'ledger_keep'")
    conn.execute("INSERT INTO ingest_ledger (batch_id, kind, rows) VALUES ('b', 'samples', 1)")
    with (psycopg.connect(as_user(pg_dsn, WRITER_ROLE), autocommit=True) as w,
          pytest.raises(psycopg.errors.RaiseException, match="ledger_keep")):
        w.execute("SELECT fe_maintain_as_writer()")
    assert conn.execute("SELECT count(*) FROM ingest_ledger").fetchone() == (1,)


# -- the component ---------------------------------------------------------------------------------------


async def _until(predicate: Any, what: str) -> None:
    for _ in range(600):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_component_runs_on_start_and_records_the_report(
        pg_historian: psycopg.Connection[Any], pg_dsn: str) -> None:
    conn = pg_historian
    _drop_daily_partitions(conn)
    events: list[tuple[str, str, dict[str, Any]]] = []
    comp = HistorianMaintenance(as_user(pg_dsn, WRITER_ROLE), interval_s=3600.0,
                                on_event=lambda k, m, d: events.append((k, m, d)))
    assert (comp.name, comp.role) == ("historian-maintenance", "sink")

    async def scenario() -> None:
        task = asyncio.create_task(comp.run())
        await _until(lambda: bool(events), "the first round's event")
        await comp.stop()
        await asyncio.wait_for(task, 30)  # the hour-long interval is cut short by stop()

    asyncio.run(scenario())
    assert comp.rounds == 1 and comp.failures == 0
    [(kind, message, detail)] = events
    assert kind == "audit"
    assert message.startswith("historian maintenance: postgres: partitions created ")
    assert detail["report"] == comp.last_report
    json.dumps(detail)  # goes into events.detail as JSON
    assert _regclass(conn, _part("samples", datetime.now(UTC).date() + timedelta(days=3)))


def test_component_survives_an_outage_and_stops(pg_dsn: str) -> None:
    dead = f"postgresql://{WRITER_ROLE}@127.0.0.1:{free_port()}/nothing"
    events: list[tuple[str, str, dict[str, Any]]] = []
    comp = HistorianMaintenance(dead, interval_s=0.05, name="maint",
                                on_event=lambda k, m, d: events.append((k, m, d)))

    async def scenario() -> None:
        task = asyncio.create_task(comp.run())
        await _until(lambda: comp.failures >= 3, "three failed rounds")
        assert not task.done()  # still trying
        await comp.stop()
        await asyncio.wait_for(task, 30)  # returns, does not raise

    asyncio.run(scenario())
    assert comp.rounds == 0 and comp.last_error is not None
    assert {k for k, _, _ in events} == {"runtime"}
    assert events[0][2]["component"] == "maint"
    assert "retrying" in events[0][1]


def test_component_without_the_migration_says_what_to_do(pg_dsn: str) -> None:
    events: list[tuple[str, str, dict[str, Any]]] = []
    comp = HistorianMaintenance(pg_dsn, on_event=lambda k, m, d: events.append((k, m, d)))
    assert asyncio.run(comp.run_once()) is None
    assert "edge historian init" in events[0][2]["error"]


def test_component_stops_before_and_during_a_round(pg_historian: psycopg.Connection[Any],
                                                   pg_dsn: str) -> None:
    comp = HistorianMaintenance(as_user(pg_dsn, WRITER_ROLE))

    async def stopped_first() -> None:
        await comp.stop()
        await asyncio.wait_for(comp.run(), 30)

    asyncio.run(stopped_first())
    assert comp.rounds == 0 and comp.failures == 0

    # a round blocked on the advisory lock's table locks: hold an exclusive lock on samples_default
    conn = pg_historian
    _drop_daily_partitions(conn)
    comp2 = HistorianMaintenance(as_user(pg_dsn, WRITER_ROLE))

    async def stopped_mid_round() -> None:
        with conn.transaction():
            conn.execute("LOCK TABLE samples_default IN ACCESS EXCLUSIVE MODE")
            task = asyncio.create_task(comp2.run())
            await _until(lambda: _waiting_on_lock(pg_dsn), "the round to wait for the lock")
            await comp2.stop()
            await asyncio.wait_for(task, 30)
        assert not _waiting_on_lock(pg_dsn)

    asyncio.run(stopped_mid_round())
    assert comp2.rounds == 0


def _waiting_on_lock(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = "
                        "current_database() AND wait_event_type = 'Lock'", (WRITER_ROLE,)).fetchone()
    return bool(row and row[0])


# -- TimescaleDB (PGlite) ------------------------------------------------------------------------------


@pytest.mark.timescale
def test_timescale_writer_maintenance(timescale_conn: psycopg.Connection[Any]) -> None:
    conn = timescale_conn
    init_historian(conn, HistorianSettings.model_validate({"ledger_keep": "2 days", "outbox_keep": "1 day"}),
                   flavor="timescaledb")
    conn.execute("INSERT INTO ingest_ledger (batch_id, kind, rows, committed_at) VALUES "
                 "('old', 'samples', 1, now() - INTERVAL '3 days'), ('new', 'samples', 1, now())")
    _insert_outbox(conn)
    jobs_before = conn.execute("SELECT count(*) FROM timescaledb_information.jobs "
                               "WHERE job_id >= 1000").fetchone()
    conn.execute(f"SET ROLE {WRITER_ROLE}")
    try:
        assert conn.execute("SELECT current_user").fetchone() == (WRITER_ROLE,)
        row = conn.execute("SELECT fe_maintain_as_writer()").fetchone()
        assert denied(conn, "SELECT fe_prune_outbox(INTERVAL '1 second')")
        assert denied(conn, "DELETE FROM ingest_ledger")
    finally:
        conn.execute("RESET ROLE")
    assert row is not None
    text = str(row[0])
    assert text.startswith("timescaledb: ledger entries pruned 1; published outbox rows pruned 1; ")
    assert jobs_before is not None and f"native jobs {jobs_before[0]} " in text
    assert conn.execute("SELECT batch_id FROM ingest_ledger").fetchall() == [("new",)]
    assert _outbox_left(conn) == ["published-recently", "unpublished-old"]
    conn.execute(f"SET ROLE {READER_ROLE}")
    try:
        assert denied(conn, "SELECT fe_maintain_as_writer()")
    finally:
        conn.execute("RESET ROLE")
