"""Historian administration: roles and grants, retention/compression policies, maintenance, init, status.

Everything here runs as a superuser (or the database owner) at install time; the appliance itself connects as
``edge_writer`` and the terminal UI as ``edge_reader``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from edge.sinks.historian.migrate import Conn, Flavor, MigrationResult, migrate, set_meta, stored_flavor
from edge.sinks.historian.settings import HistorianSettings

log = logging.getLogger(__name__)

WRITER_ROLE = "edge_writer"
READER_ROLE = "edge_reader"

# Tables of the historian core; edge_writer may INSERT and SELECT, and UPDATE only the MES context columns.
CORE_TABLES = ("samples", "features", "insights", "events", "dead_letters", "ingest_ledger")
RELABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "samples": ("work_order", "product", "batch", "shift"),
    "insights": ("context", "revised", "revision"),
}
# Bookkeeping tables: readable, never writable by the appliance.
META_TABLES = ("schema_migrations", "historian_meta")
TIME_TABLES = ("samples", "features", "insights", "events", "dead_letters")
AGGREGATES = ("samples_1m", "samples_1h")


@dataclass
class InitReport:
    flavor: Flavor
    migrations: MigrationResult
    roles_created: list[str] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"flavor: {self.flavor}"]
        m = self.migrations
        out.append(f"migrations applied now: {', '.join(m.applied) or 'none'}")
        out.append(f"migrations already applied: {', '.join(m.already) or 'none'}")
        if m.changed:
            out.append(f"warning: changed since applied (not re-run): {', '.join(m.changed)}")
        out.append(f"roles created: {', '.join(self.roles_created) or 'none (already there)'}")
        out.extend(f"grant: {g}" for g in self.grants)
        out.extend(f"policy: {p}" for p in self.policies)
        return out


def _role_exists(conn: Conn, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def ensure_roles(
    conn: Conn, writer_password: str | None = None, reader_password: str | None = None
) -> list[str]:
    """Create ``edge_writer`` and ``edge_reader`` (LOGIN, no superuser) if missing; set passwords if given."""
    created: list[str] = []
    for role, password in ((WRITER_ROLE, writer_password), (READER_ROLE, reader_password)):
        if not _role_exists(conn, role):
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                        sql.Identifier(role)))
                created.append(role)
            except psycopg.errors.DuplicateObject:
                pass  # created meanwhile by another init on the same server (roles are cluster-wide)
        row = conn.execute("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s",
                           (role,)).fetchone()
        needs_alter = row is None or not row[0] or row[1]
        # Roles are cluster-wide: an init of another database on the same server may alter them at the same
        # moment ("tuple concurrently updated"); alter only when needed, and retry that race.
        for attempt in range(5):
            try:
                with conn.transaction():
                    if needs_alter:
                        conn.execute(sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(role)))
                    if password is not None:
                        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role),
                                                                                 sql.Literal(password)))
                break
            except psycopg.errors.InternalError:
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))
    return created


def _public_relations(conn: Conn) -> list[tuple[str, str]]:
    """(name, relkind) of tables, partitioned tables, views and materialized views in schema public."""
    rows = conn.execute(
        """
        SELECT c.relname, c.relkind::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
          AND NOT c.relispartition
        ORDER BY c.relname
        """
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def apply_grants(conn: Conn) -> list[str]:
    """(Re)apply the grants of both roles. Idempotent; run after every migration.

    edge_reader: SELECT on every table and view in public. edge_writer: SELECT on all of them, INSERT on
    every table except the bookkeeping ones, UPDATE only on the MES context columns of samples and insights,
    EXECUTE on the argument-free maintenance functions. Other areas grant anything more in their own
    migrations (those grants are left alone here, except on the core tables, whose UPDATE/DELETE/TRUNCATE
    are revoked).
    """
    done: list[str] = []
    ident = sql.Identifier
    w, r = ident(WRITER_ROLE), ident(READER_ROLE)
    with conn.transaction():
        db = conn.info.dbname
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(ident(db), w, r))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(w, r))
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}, {}").format(w, r))
        for name, kind in _public_relations(conn):
            t = ident(name)
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}, {}").format(t, w, r))
            if kind in ("r", "p") and name not in META_TABLES:
                conn.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(t, w))
                done.append(f"{WRITER_ROLE}: INSERT, SELECT on {name}")
            else:
                done.append(f"{WRITER_ROLE}: SELECT on {name}")
            conn.execute(sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(t, r))
        for name in CORE_TABLES:
            conn.execute(sql.SQL("REVOKE DELETE, TRUNCATE ON {} FROM {}").format(ident(name), w))
            held = conn.execute("SELECT has_table_privilege(%s, %s, 'UPDATE')",
                                (WRITER_ROLE, name)).fetchone()
            if held and held[0]:  # table-wide UPDATE (also drops column grants, re-granted below)
                conn.execute(sql.SQL("REVOKE UPDATE ON {} FROM {}").format(ident(name), w))
        for name, cols in RELABEL_COLUMNS.items():
            # Only grant what is missing: on TimescaleDB a column GRANT on a table with compression enabled
            # fails (2.23 propagates it to the column-less compressed hypertable); 0001 grants them earlier.
            missing = [
                c for c in cols
                if not (conn.execute("SELECT has_column_privilege(%s, %s, %s, 'UPDATE')",
                                     (WRITER_ROLE, name, c)).fetchone() or (False,))[0]
            ]
            if missing:
                try:
                    with conn.transaction():
                        conn.execute(sql.SQL("GRANT UPDATE ({}) ON {} TO {}").format(
                            sql.SQL(", ").join(ident(c) for c in missing), ident(name), w))
                except psycopg.errors.UndefinedColumn as exc:
                    log.warning("cannot grant UPDATE (%s) on %s: %s", ", ".join(missing), name, exc)
                    done.append(f"warning: UPDATE ({', '.join(missing)}) on {name} NOT granted: {exc}")
                    continue
            done.append(f"{WRITER_ROLE}: UPDATE ({', '.join(cols)}) on {name}")
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(w))
        done.append(f"{READER_ROLE}: SELECT on all tables and views in public")
        # Only the argument-free entry points, whose settings the writer cannot change: with
        # fe_prune_ledger(interval) a writer could empty the ledger, and replays would then store twice.
        for fn, grant in (("fe_refresh_aggregates()", True), ("fe_maintain()", True),
                          ("fe_maintain_as_writer()", True), ("fe_ensure_partitions(integer)", False),
                          ("fe_prune_ledger(interval)", False)):
            exists = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (fn,)).fetchone()
            if exists and exists[0]:
                verb = ("GRANT EXECUTE ON FUNCTION {} TO {}" if grant
                        else "REVOKE EXECUTE ON FUNCTION {} FROM {}")
                conn.execute(sql.SQL(verb).format(sql.SQL(fn), w))  # type: ignore[arg-type]
                done.append(f"{WRITER_ROLE}: {'EXECUTE' if grant else 'no EXECUTE'} {fn}")
    return done


def apply_policies(conn: Conn, flavor: Flavor, settings: HistorianSettings) -> list[str]:
    """Chunk interval, compression, retention and aggregate refresh policies from config. Idempotent.

    TimescaleDB: policies are replaced by the configured ones. Plain PostgreSQL: the settings go into
    ``historian_meta`` for ``fe_maintain()``, and partitions are created ahead now.
    """
    done: list[str] = []
    lit = sql.Literal
    with conn.transaction():
        set_meta(conn, "partitions_ahead", str(settings.partitions_ahead))
        set_meta(conn, "retention", settings.retention)
        set_meta(conn, "compress_after", settings.compress_after)
        set_meta(conn, "chunk_interval", settings.chunk_interval)
        set_meta(conn, "ledger_keep", settings.ledger_keep)
        set_meta(conn, "outbox_keep", settings.outbox_keep)
        if flavor == "timescaledb":
            conn.execute(sql.SQL("SELECT set_chunk_time_interval('samples', {}::interval)").format(
                lit(settings.chunk_interval)))
            conn.execute(sql.SQL("SELECT set_chunk_time_interval('features', {}::interval)").format(
                lit(settings.chunk_interval)))
            done.append(f"chunk interval of samples and features: {settings.chunk_interval}")
            for table in ("samples", "features"):
                conn.execute("SELECT remove_compression_policy(%s, if_exists => true)", (table,))
                conn.execute(sql.SQL("SELECT add_compression_policy({}, {}::interval)").format(
                    lit(table), lit(settings.compress_after)))
                done.append(f"compress {table} chunks older than {settings.compress_after}")
            for table in TIME_TABLES:
                conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table,))
                conn.execute(sql.SQL("SELECT add_retention_policy({}, {}::interval)").format(
                    lit(table), lit(settings.retention)))
            done.append(f"drop chunks older than {settings.retention} ({', '.join(TIME_TABLES)})")
            for view, start, end, every in (
                ("samples_1m", "2 hours", "1 minute", "1 minute"),
                ("samples_1h", "3 days", "1 hour", "30 minutes"),
            ):
                conn.execute("SELECT remove_continuous_aggregate_policy(%s, if_exists => true)", (view,))
                conn.execute(sql.SQL(
                    "SELECT add_continuous_aggregate_policy({}, start_offset => {}::interval, "
                    "end_offset => {}::interval, schedule_interval => {}::interval)"
                ).format(lit(view), lit(start), lit(end), lit(every)))
                done.append(f"refresh {view} every {every} (window {start} .. {end} ago)")
            for (job,) in conn.execute("SELECT job_id FROM timescaledb_information.jobs "
                                       "WHERE proc_name = 'fe_prune_ledger_job'").fetchall():
                conn.execute("SELECT delete_job(%s)", (job,))
            conn.execute("SELECT add_job('fe_prune_ledger_job', INTERVAL '1 hour', config => %s::jsonb)",
                         (json.dumps({"keep": settings.ledger_keep}),))
            done.append(f"prune ledger entries older than {settings.ledger_keep} every hour")
        else:
            row = conn.execute("SELECT fe_ensure_partitions(%s)", (settings.partitions_ahead,)).fetchone()
            new = row[0] if row else 0
            done.append(f"daily partitions {settings.partitions_ahead} days ahead ({new} new)")
            done.append(f"retention {settings.retention}, ledger pruning after {settings.ledger_keep}, "
                        f"published outbox pruning after {settings.outbox_keep} and aggregate refresh via "
                        "fe_maintain_as_writer() (the appliance, every historian.maintenance_interval_s)")
    return done


def init_historian(
    conn: Conn,
    settings: HistorianSettings | None = None,
    flavor: str | None = None,
    reader_password: str | None = None,
) -> InitReport:
    """Create or upgrade everything: roles, migrations, grants, policies. Idempotent.

    ``conn``: a superuser connection in autocommit mode to the historian database.
    """
    settings = settings or HistorianSettings.model_validate({})
    writer_password = settings.password.resolve() if settings.password is not None else None
    if reader_password is None and settings.reader_password is not None:
        reader_password = settings.reader_password.resolve()
    created = ensure_roles(conn, writer_password, reader_password)
    result = migrate(conn, flavor or settings.flavor)
    report = InitReport(result.flavor, result, created)
    report.grants = apply_grants(conn)
    report.policies = apply_policies(conn, result.flavor, settings)
    return report


def _writer_maintenance(conn: Conn) -> str | None:
    """``fe_maintain_as_writer()`` (migration 0003) when the database has it, else None."""
    has = conn.execute("SELECT to_regprocedure('fe_maintain_as_writer()') IS NOT NULL").fetchone()
    if not has or not has[0]:
        return None
    row = conn.execute("SELECT fe_maintain_as_writer()").fetchone()
    return str(row[0]) if row else ""


def run_maintenance(conn: Conn, flavor: Flavor | None = None) -> str:
    """One round of what background jobs do: on plain PostgreSQL ``fe_maintain_as_writer()`` (or
    ``fe_maintain()`` before migration 0003); on TimescaleDB every policy job is run now with ``CALL run_job``
    (needed where there is no background worker, as in PGlite), then ``fe_maintain_as_writer()`` (outbox).

    ``conn`` must be in autocommit mode (continuous aggregate refreshes cannot run in a transaction block).
    """
    flavor = flavor or stored_flavor(conn) or "postgres"
    if flavor == "postgres":
        report = _writer_maintenance(conn)
        if report is not None:
            return report
        row = conn.execute("SELECT fe_maintain()").fetchone()
        return str(row[0]) if row else ""
    jobs = conn.execute(
        "SELECT job_id, proc_name FROM timescaledb_information.jobs WHERE job_id >= 1000 ORDER BY job_id"
    ).fetchall()
    for job_id, _ in jobs:
        conn.execute("CALL run_job(%s)", (job_id,))
    out = f"ran {len(jobs)} jobs: " + ", ".join(f"{j}:{p}" for j, p in jobs)
    report = _writer_maintenance(conn)
    return out if report is None else f"{out}; {report}"


def refresh_aggregates(conn: Conn, flavor: Flavor | None = None) -> None:
    """Bring samples_1m and samples_1h up to date with all rows (autocommit connection)."""
    flavor = flavor or stored_flavor(conn) or "postgres"
    if flavor == "postgres":
        conn.execute("SELECT fe_refresh_aggregates()")
        return
    for view in AGGREGATES:
        conn.execute(sql.SQL("CALL refresh_continuous_aggregate({}, NULL, NULL)").format(sql.Literal(view)))


@dataclass
class Status:
    flavor: Flavor | None
    migrations: list[tuple[int, str, str]]  # version, name, applied_at
    row_counts: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"flavor: {self.flavor or 'not initialised'}"]
        out.append(f"migrations applied: {len(self.migrations)}")
        out.extend(f"  {v:04d}_{n}  {at}" for v, n, at in self.migrations)
        out.append("rows:")
        out.extend(f"  {t}: {n}" for t, n in self.row_counts.items())
        out.extend(f"{k}: {v}" for k, v in self.extra.items())
        return out


def status(conn: Conn) -> Status:
    flavor = stored_flavor(conn)
    migrations: list[tuple[int, str, str]] = []
    counts: dict[str, int] = {}
    has = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if has and has[0]:
        migrations = [
            (int(v), str(n), str(at))
            for v, n, at in conn.execute(
                "SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
        ]
    for table in (*CORE_TABLES, *AGGREGATES):
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if exists and exists[0]:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(row[0]) if row else 0
    extra: dict[str, Any] = {}
    if flavor == "timescaledb":
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks"
        ).fetchone()
        if row:
            extra["chunks (compressed)"] = f"{row[0]} ({row[1]})"
    elif flavor == "postgres":
        row = conn.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE c.relname ~ '_p[0-9]{8}$'"
        ).fetchone()
        if row:
            extra["daily partitions"] = int(row[0])
    return Status(flavor, migrations, counts, extra)
