"""Roles: edge_writer inserts, reads and relabels MES context columns, nothing more; edge_reader reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from edge.core.envelope import Envelope
from edge.sinks.historian.admin import READER_ROLE, WRITER_ROLE, apply_grants, init_historian
from edge.sinks.historian.errors import HistorianWriteError
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.writer import HistorianWriter
from tests.fixtures.historian_helpers import as_user, denied, events_batch, samples_batch
from tests.fixtures.historian_helpers import historian as historian  # fixture

SETTINGS = HistorianSettings.model_validate({})


@contextmanager
def as_role(conn: psycopg.Connection[Any], flavor: str, dsn: str | None,
            role: str) -> Iterator[psycopg.Connection[Any]]:
    """A session as ``role``: a real login on PostgreSQL, ``SET ROLE`` on PGlite (one session only)."""
    if flavor == "postgres":
        assert dsn is not None
        with psycopg.connect(as_user(dsn, role), autocommit=True) as c:
            assert c.execute("SELECT current_user").fetchone() == (role,)
            yield c
    else:
        conn.execute(f"SET ROLE {role}")
        try:
            yield conn
        finally:
            conn.execute("RESET ROLE")


def test_roles_are_login_roles_without_superuser(historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, _ = historian
    rows = conn.execute("SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                        "WHERE rolname IN (%s, %s) ORDER BY 1", (READER_ROLE, WRITER_ROLE)).fetchall()
    assert rows == [(READER_ROLE, True, False, False, False), (WRITER_ROLE, True, False, False, False)]


def test_writer_and_reader_grants(historian: tuple[psycopg.Connection[Any], str],
                                  request: pytest.FixtureRequest) -> None:
    conn, flavor = historian
    dsn = request.getfixturevalue("pg_dsn") if flavor == "postgres" else None
    # grants re-applied by a second init are the same
    init_historian(conn, SETTINGS)
    with as_role(conn, flavor, dsn, WRITER_ROLE) as w:
        writer = HistorianWriter(SETTINGS, conn=w)
        assert writer.write_sync(Envelope("samples", samples_batch(20), "w1"))
        assert writer.write_sync(Envelope("events", events_batch(), "w2"))
        assert writer.write_sync(Envelope("samples", samples_batch(20), "w1")) is False
        assert w.execute("SELECT count(*) FROM samples").fetchone() == (20,)
        # MES relabel: the context columns only
        w.execute("UPDATE samples SET work_order = 'WO-9', batch = 'B-9' WHERE quality = 0")
        assert denied(w, "UPDATE samples SET value = 0")
        assert denied(w, "UPDATE events SET message = 'x'")
        assert denied(w, "DELETE FROM samples")
        assert denied(w, "DELETE FROM ingest_ledger")
        assert denied(w, "TRUNCATE events")
        assert denied(w, "DROP TABLE events")
        assert denied(w, "ALTER TABLE samples ADD COLUMN x int")
        assert denied(w, "CREATE TABLE public.mine (x int)")
        assert denied(w, "INSERT INTO schema_migrations (version, name, flavor, checksum) "
                          "VALUES (9999, 'x', 'x', 'x')")
    with as_role(conn, flavor, dsn, READER_ROLE) as r:
        assert r.execute("SELECT count(*) FROM samples").fetchone() == (20,)
        r.execute("SELECT * FROM samples_1m LIMIT 1")
        r.execute("SELECT * FROM insights LIMIT 1")
        assert denied(r, "INSERT INTO events (ts, kind, source, message) VALUES (now(), 'x', 'x', 'x')")
        assert denied(r, "UPDATE samples SET work_order = 'x'")
        assert denied(r, "DELETE FROM samples")
        assert denied(r, "DROP TABLE samples")
        reader_writer = HistorianWriter(SETTINGS, conn=r)
        with pytest.raises(HistorianWriteError, match="permission denied"):
            reader_writer.write_sync(Envelope("samples", samples_batch(5), "r1"))
    assert conn.execute("SELECT count(*) FROM ingest_ledger").fetchone() == (2,)


def test_apply_grants_is_idempotent(historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, _ = historian
    first = apply_grants(conn)
    second = apply_grants(conn)
    assert first == second
    assert not any(line.startswith("warning") for line in first)


def test_passwords_from_secret_refs(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FE_TEST_WRITER_PW", "w-secret")
    monkeypatch.setenv("FE_TEST_READER_PW", "r-secret")
    settings = HistorianSettings.model_validate({"password": {"env": "FE_TEST_WRITER_PW"},
                                                 "reader_password": {"env": "FE_TEST_READER_PW"}})
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        try:
            init_historian(conn, settings)
            rows = conn.execute("SELECT rolname, rolpassword IS NOT NULL FROM pg_authid WHERE rolname IN "
                                "(%s, %s) ORDER BY 1", (READER_ROLE, WRITER_ROLE)).fetchall()
            assert rows == [(READER_ROLE, True), (WRITER_ROLE, True)]
        finally:
            # roles are shared by every database on the server: leave them password-less for other tests
            conn.execute(f"ALTER ROLE {WRITER_ROLE} PASSWORD NULL")
            conn.execute(f"ALTER ROLE {READER_ROLE} PASSWORD NULL")
