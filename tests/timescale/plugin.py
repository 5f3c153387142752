"""pytest fixtures for the TimescaleDB path: PGlite (PostgreSQL 17 + TimescaleDB 2.23, WebAssembly) in Node.

``timescale_dsn`` (session): installs the pinned npm packages with ``npm ci`` when ``node_modules`` is
missing, starts ``server.js`` on a free port and yields a DSN. ``timescale_conn`` (per test): the one
connection the server allows (``prepare_threshold=None``, autocommit), on a wiped ``public`` schema.

Limits of this build: one shared session (never open a second connection while one is open), no COPY (the
server process dies), no background jobs (run policies with ``CALL run_job(id)``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.services import free_port

HARNESS = Path(__file__).resolve().parent


def _install() -> None:
    if (HARNESS / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the TimescaleDB (PGlite) harness needs Node.js 18+")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HARNESS, check=True, timeout=600,
                   stdout=subprocess.DEVNULL)


def connect(dsn: str, attempts: int = 50) -> psycopg.Connection[tuple[object, ...]]:
    """Connect, retrying: right after a client disconnects the server refuses the next one for a moment
    (it serves one connection at a time)."""
    for attempt in range(attempts):
        try:
            return psycopg.connect(dsn, autocommit=True, prepare_threshold=None, connect_timeout=10)
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def timescale_dsn() -> Iterator[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the TimescaleDB (PGlite) harness needs Node.js 18+")
    _install()
    port = free_port()
    log = HARNESS / f".server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([node, "server.js", "--port", str(port)], cwd=HARNESS, stdout=out,
                                stderr=subprocess.STDOUT)
    dsn = f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres?sslmode=disable"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the PGlite server exited: {log.read_text()[-2000:]}")
            if b"READY" in log.read_bytes():
                try:
                    with connect(dsn, attempts=1) as conn:
                        conn.execute("SELECT 1")
                    break
                except psycopg.OperationalError:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the PGlite server did not answer in 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield dsn
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


@pytest.fixture
def timescale_conn(timescale_dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """The single connection to the PGlite TimescaleDB, with an empty ``public`` schema."""
    with connect(timescale_dsn) as conn:
        reset_public(conn)
        yield conn


def reset_public(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Drop everything in ``public`` that is not part of an extension. (Dropping the schema would drop the
    timescaledb extension, which cannot be created again in the same session, and there is one session.)"""
    not_ext = "NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"
    if _has_timescaledb(conn):  # user-defined jobs (policies go with their tables)
        conn.execute("SELECT delete_job(job_id) FROM timescaledb_information.jobs WHERE job_id >= 1000 "
                     "AND hypertable_name IS NULL")
    for (view,) in conn.execute(
        "SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'public'"
    ).fetchall() if _has_timescaledb(conn) else []:
        conn.execute(f'DROP MATERIALIZED VIEW IF EXISTS public."{view}" CASCADE')
    for kind, word in (("v", "VIEW"), ("m", "MATERIALIZED VIEW"), ("p", "TABLE"), ("r", "TABLE")):
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = 'public' AND c.relkind = %s AND {not_ext}", (kind,)).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP {word} IF EXISTS public."{name}" CASCADE')
    for (sig,) in conn.execute(
        "SELECT c.oid::regprocedure::text FROM pg_proc c JOIN pg_namespace n ON n.oid = c.pronamespace "
        f"WHERE n.nspname = 'public' AND {not_ext}"
    ).fetchall():
        conn.execute(f"DROP ROUTINE IF EXISTS {sig} CASCADE")


def _has_timescaledb(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return bool(row and row[0])
