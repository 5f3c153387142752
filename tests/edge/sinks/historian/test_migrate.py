"""Migrations on plain PostgreSQL 15 and on the TimescaleDB (PGlite) build: idempotent, upgradeable, and
what each flavor must create."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edge.core.datamodel import samples_from_arrays
from edge.core.envelope import Envelope
from edge.sinks.historian.admin import init_historian, refresh_aggregates, run_maintenance
from edge.sinks.historian.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate, render_sql
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.writer import HistorianWriter
from tests.fixtures.historian_helpers import T0
from tests.fixtures.historian_helpers import historian as historian  # fixture

CORE = ["samples", "features", "insights", "events", "dead_letters", "ingest_ledger"]


def _settings(**kw: Any) -> HistorianSettings:
    return HistorianSettings.model_validate(kw)


def _regclass(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def test_discover_orders_and_pairs_flavor_files() -> None:
    migs = discover()
    versions = [m.version for m in migs]
    assert versions == sorted(versions)
    core = migs[0]
    assert (core.version, core.name) == (1, "core")
    assert set(core.flavored) == {"timescaledb", "postgres"}
    ddl = "CREATE TABLE x (ts int) /*fe:partition_by(ts)*/"
    assert "PARTITION BY RANGE (ts)" in render_sql(ddl, "postgres")
    assert "PARTITION BY" not in render_sql(ddl, "timescaledb")


def test_discover_rejects_bad_names(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0001_b.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="already used"):
        discover(tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "1_bad.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="NNNN_name"):
        discover(tmp_path)


def test_migrations_idempotent_and_upgrade(historian: tuple[psycopg.Connection[Any], str],
                                           tmp_path: Path) -> None:
    conn, flavor = historian
    applied = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in applied] == [m.version for m in discover()]
    for table in CORE:
        assert _regclass(conn, table), table

    again = init_historian(conn, _settings(), flavor=flavor)
    assert again.migrations.applied == []
    assert again.flavor == flavor
    assert again.migrations.changed == []

    # a new file is picked up, in order, on the next run; the flavor file only on its flavor
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    (folder / "0099_extra.sql").write_text("CREATE TABLE extra_thing (id int);")
    (folder / f"0099_extra.{flavor}.sql").write_text("ALTER TABLE extra_thing ADD COLUMN mine text;")
    other = "postgres" if flavor == "timescaledb" else "timescaledb"
    (folder / f"0099_extra.{other}.sql").write_text("THIS IS NOT SQL;")
    result = migrate(conn, flavor, folder)
    assert result.applied == ["0099_extra"]
    cols = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'extra_thing' "
                        "ORDER BY ordinal_position").fetchall()
    assert [c[0] for c in cols] == ["id", "mine"]
    assert migrate(conn, flavor, folder).applied == []

    # a broken migration fails loudly and records nothing
    (folder / "0098_broken.sql").write_text("CREATE TABLE broken_thing (id int); SELECT no_such_function();")
    with pytest.raises(MigrationError, match="0098_broken"):
        migrate(conn, flavor, folder)
    assert not _regclass(conn, "broken_thing")
    row = conn.execute("SELECT count(*) FROM schema_migrations WHERE version = 98").fetchone()
    assert row is not None and row[0] == 0


def test_flavor_is_kept(historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, flavor = historian
    other = "postgres" if flavor == "timescaledb" else "timescaledb"
    with pytest.raises(MigrationError, match=f"initialised as {flavor}"):
        migrate(conn, other)
    assert migrate(conn, "auto").flavor == flavor


def test_auto_flavor_on_plain_postgres_is_postgres(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        report = init_historian(conn, _settings())
        assert report.flavor == "postgres"
        with pytest.raises(MigrationError):
            migrate(conn, "timescaledb")


def test_plain_postgres_partitions_brin_and_views(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn, _settings(partitions_ahead=3, retention="30 days"))
        kinds = dict(conn.execute(
            "SELECT relname, relkind::text FROM pg_class WHERE relname IN "
            "('samples', 'features', 'insights', 'events', 'dead_letters', 'samples_1m', 'samples_1h')"
        ).fetchall())
        assert kinds == {"samples": "p", "features": "p", "insights": "p", "events": "p", "dead_letters": "p",
                         "samples_1m": "m", "samples_1h": "m"}
        parts = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'samples'::regclass ORDER BY 1").fetchall()]
        assert "samples_default" in parts
        daily = [p for p in parts if p != "samples_default"]
        assert len(daily) >= 5  # yesterday .. 3 days ahead (7 from the migration itself)
        brin = conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'samples' "
                            "AND indexdef ILIKE '%USING brin%'").fetchone()
        assert brin is not None and brin[0] == 1
        # rows written now land in today's partition, old rows in the default one
        w = HistorianWriter(_settings(), conn=conn)
        now_us = int(time.time() * 1e6)
        day = 86_400_000_000
        batch = samples_from_arrays([now_us, T0], ["a", "a"], [1.0, 2.0], source="s")
        w.write_sync(Envelope("samples", batch, "p1"))
        where = dict(conn.execute("SELECT value, tableoid::regclass::text FROM samples").fetchall())
        assert where[2.0] == "samples_default"
        assert where[1.0].startswith("samples_p")
        # a row beyond the partitions made so far waits in the default partition, and moves into its own
        # partition when that is created
        later = samples_from_arrays([now_us + 10 * day], ["b"], [3.0], source="s")
        w.write_sync(Envelope("samples", later, "p2"))
        loc = conn.execute("SELECT tableoid::regclass::text FROM samples WHERE tag = 'b'").fetchone()
        assert loc == ("samples_default",)
        created = conn.execute("SELECT fe_ensure_partitions(12)").fetchone()
        assert created is not None and created[0] >= 8
        loc = conn.execute("SELECT tableoid::regclass::text FROM samples WHERE tag = 'b'").fetchone()
        assert loc is not None and loc[0].startswith("samples_p")
        assert conn.execute("SELECT count(*) FROM samples").fetchone() == (3,)
        # the materialized views hold the aggregates after a refresh
        refresh_aggregates(conn, "postgres")
        agg = conn.execute("SELECT tag, n, min_value, max_value FROM samples_1m WHERE tag = 'a' "
                           "ORDER BY bucket").fetchall()
        assert agg == [("a", 1, 2.0, 2.0), ("a", 1, 1.0, 1.0)]
        # retention drops whole expired partitions; maintenance runs everything
        conn.execute("SELECT fe_ensure_partitions(1)")
        conn.execute("CREATE TABLE samples_p20000101 PARTITION OF samples FOR VALUES FROM "
                     "('2000-01-01 00:00+00') TO ('2000-01-02 00:00+00')")
        out = run_maintenance(conn, "postgres")
        assert "dropped 1" in out
        assert not _regclass(conn, "samples_p20000101")


@pytest.mark.timescale
def test_timescale_hypertables_policies_and_aggregates(timescale_conn: psycopg.Connection[Any]) -> None:
    conn = timescale_conn
    settings = _settings(compress_after="2 days", retention="30 days", chunk_interval="1 day")
    report = init_historian(conn, settings)
    assert report.flavor == "timescaledb"
    hypertables = {r[0] for r in conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables").fetchall()}
    assert {"samples", "features", "insights", "events", "dead_letters"} <= hypertables
    caggs = {r[0] for r in conn.execute(
        "SELECT view_name FROM timescaledb_information.continuous_aggregates").fetchall()}
    assert caggs == {"samples_1m", "samples_1h"}
    jobs = {(r[0], r[1]): r[2] for r in conn.execute(
        "SELECT proc_name, hypertable_name, config::text FROM timescaledb_information.jobs "
        "WHERE job_id >= 1000").fetchall()}
    assert ("policy_compression", "samples") in jobs
    assert ("policy_retention", "samples") in jobs
    assert "30 days" in jobs[("policy_retention", "samples")]
    assert "2 days" in jobs[("policy_compression", "samples")]
    # init again: same policies, not duplicated
    init_historian(conn, _settings(compress_after="2 days", retention="30 days"))
    n_jobs = conn.execute("SELECT count(*) FROM timescaledb_information.jobs WHERE job_id >= 1000").fetchone()
    assert n_jobs is not None and n_jobs[0] == len(jobs)

    # data: an old chunk (past retention), a chunk to compress, and a recent one
    now_us = int(time.time() * 1e6)
    day = 86_400_000_000
    ts = [now_us - 60 * day, now_us - 5 * day, now_us - 5 * day + 60_000_000, now_us - 1000]
    w = HistorianWriter(_settings(), conn=conn)
    w.write_sync(Envelope("samples", samples_from_arrays(ts, ["a", "a", "a", "b"], [1.0, 2.0, 4.0, 8.0],
                                                         source="s"), "ts-1"))
    assert w.method == "insert"
    chunks = conn.execute("SELECT count(*) FROM show_chunks('samples')").fetchone()
    assert chunks is not None and chunks[0] == 3

    # compression: compress one chunk directly, then the policy job compresses the rest that is old enough
    first = conn.execute("SELECT c FROM show_chunks('samples', older_than => INTERVAL '3 days') c "
                         "ORDER BY c LIMIT 1").fetchone()
    assert first is not None
    conn.execute("SELECT compress_chunk(%s::regclass)", (str(first[0]),))
    run_maintenance(conn, "timescaledb")  # CALL run_job for every policy (no background workers here)
    compressed = conn.execute("SELECT count(*) FROM timescaledb_information.chunks "
                              "WHERE hypertable_name = 'samples' AND is_compressed").fetchone()
    assert compressed is not None and compressed[0] == 1  # the 5-day-old chunk; the 60-day one was dropped
    remaining = conn.execute("SELECT value FROM samples ORDER BY ts").fetchall()
    assert [r[0] for r in remaining] == [2.0, 4.0, 8.0]  # retention removed the 60-day-old row

    # continuous aggregates after a refresh
    refresh_aggregates(conn, "timescaledb")
    agg = conn.execute("SELECT tag, n, min_value, max_value, avg_value FROM samples_1h "
                       "ORDER BY tag").fetchall()
    assert agg == [("a", 2, 2.0, 4.0, 3.0), ("b", 1, 8.0, 8.0, 8.0)]
    m1 = conn.execute("SELECT count(*) FROM samples_1m").fetchone()
    assert m1 is not None and m1[0] == 3


def test_ledger_is_pruned_by_maintenance(historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, flavor = historian
    init_historian(conn, _settings(ledger_keep="2 days"), flavor=flavor)
    conn.execute("INSERT INTO ingest_ledger (batch_id, kind, rows, committed_at) VALUES "
                 "('old', 'samples', 1, now() - INTERVAL '3 days'), ('new', 'samples', 1, now())")
    run_maintenance(conn, flavor)  # type: ignore[arg-type]
    assert conn.execute("SELECT batch_id FROM ingest_ledger").fetchall() == [("new",)]
