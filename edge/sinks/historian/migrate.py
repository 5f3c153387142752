"""Numbered SQL migrations for the historian, on TimescaleDB or plain PostgreSQL.

Files in ``edge/sinks/historian/migrations/``: ``NNNN_name.sql`` (common), optionally
``NNNN_name.timescaledb.sql``
and ``NNNN_name.postgres.sql``, run after the common file for that flavor, in the same transaction. A
flavor-only migration (no common file) is allowed. Applied versions are recorded in ``schema_migrations``;
running again is a no-op, a new file is applied on the next run.

In common files ``/*fe:partition_by(COL)*/`` becomes ``PARTITION BY RANGE (COL)`` on plain PostgreSQL and
stays a comment on TimescaleDB.

Flavor: TimescaleDB when ``CREATE EXTENSION IF NOT EXISTS timescaledb`` succeeds (the extension is listed
in ``pg_available_extensions`` and loadable), plain PostgreSQL otherwise; ``flavor=`` overrides. The flavor
chosen the first time is stored in ``historian_meta`` and kept.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

Conn = psycopg.Connection[Any]
Flavor = Literal["timescaledb", "postgres"]
FLAVORS: tuple[Flavor, ...] = ("timescaledb", "postgres")
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x6665_0001  # pg_advisory_lock key held while migrating

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<flavor>timescaledb|postgres))?\.sql$")
_PARTITION = re.compile(r"/\*\s*fe:partition_by\((?P<col>[a-z_][a-z0-9_]*)\)\s*\*/")


class MigrationError(Exception):
    """A migration file that cannot be applied, or a database whose state contradicts the request."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    common: Path | None
    flavored: dict[str, Path]

    def sql_for(self, flavor: Flavor) -> str:
        parts: list[str] = []
        if self.common is not None:
            parts.append(render_sql(self.common.read_text(), flavor))
        if flavor in self.flavored:
            parts.append(render_sql(self.flavored[flavor].read_text(), flavor))
        return "\n;\n".join(parts)

    def checksum(self, flavor: Flavor) -> str:
        return hashlib.sha256(self.sql_for(flavor).encode()).hexdigest()


def render_sql(text: str, flavor: Flavor) -> str:
    if flavor == "postgres":
        return _PARTITION.sub(lambda m: f"PARTITION BY RANGE ({m['col']})", text)
    return text


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migrations in ``directory``, in version order. Unknown ``.sql`` names are errors."""
    by_version: dict[int, dict[str, object]] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _FILE.match(path.name)
        if m is None:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql or NNNN_name.<flavor>.sql")
        version = int(m["version"])
        entry = by_version.setdefault(version, {"name": m["name"], "common": None, "flavored": {}})
        if entry["name"] != m["name"]:
            raise MigrationError(f"{path}: version {version:04d} is already used by {entry['name']!r}")
        if m["flavor"]:
            flavored = entry["flavored"]
            assert isinstance(flavored, dict)
            flavored[m["flavor"]] = path
        else:
            entry["common"] = path
    out: list[Migration] = []
    for version in sorted(by_version):
        e = by_version[version]
        common = e["common"]
        flavored = e["flavored"]
        assert isinstance(flavored, dict)
        out.append(Migration(version, str(e["name"]), common if isinstance(common, Path) else None,
                             dict(flavored)))
    return out


def timescaledb_available(conn: Conn) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return bool(row and row[0])


def stored_flavor(conn: Conn) -> Flavor | None:
    row = conn.execute(
        "SELECT to_regclass('historian_meta') IS NOT NULL"
    ).fetchone()
    if not row or not row[0]:
        return None
    got = conn.execute("SELECT value FROM historian_meta WHERE key = 'flavor'").fetchone()
    if got is None:
        return None
    value = str(got[0])
    return value if value in FLAVORS else None  # type: ignore[return-value]


def detect_flavor(conn: Conn, requested: str = "auto") -> Flavor:
    """The flavor to use: the stored one, else the requested one, else TimescaleDB if it can be created.

    Creates the ``timescaledb`` extension when that flavor is chosen. Raises :class:`MigrationError` when the
    request contradicts the stored flavor or TimescaleDB is requested but cannot be created.
    """
    if requested not in ("auto", *FLAVORS):
        raise MigrationError(f"unknown flavor {requested!r} (auto, timescaledb or postgres)")
    stored = stored_flavor(conn)
    if stored is not None:
        if requested != "auto" and requested != stored:
            raise MigrationError(
                f"this database was initialised as {stored}; it cannot be migrated as {requested}"
            )
        if stored == "timescaledb":
            _create_timescaledb(conn)
        return stored
    if requested == "postgres":
        return "postgres"
    if not timescaledb_available(conn):
        if requested == "timescaledb":
            raise MigrationError("flavor timescaledb requested but the extension is not available here")
        return "postgres"
    try:
        _create_timescaledb(conn)
    except psycopg.Error as exc:
        if requested == "timescaledb":
            raise MigrationError(
                f"flavor timescaledb requested but the extension cannot be created: {exc}") from exc
        log.info("timescaledb is listed but cannot be created (%s); using plain PostgreSQL", exc)
        return "postgres"
    return "timescaledb"


def _create_timescaledb(conn: Conn) -> None:
    with conn.transaction():
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")


_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    flavor     text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS historian_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
"""


@dataclass
class MigrationResult:
    flavor: Flavor
    applied: list[str]
    already: list[str]
    changed: list[str]  # applied earlier but the file has changed since (reported, not re-run)


def applied_versions(conn: Conn) -> dict[int, tuple[str, str]]:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return {}
    return {
        int(v): (str(n), str(c))
        for v, n, c in conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    }


def migrate(
    conn: Conn,
    flavor: str = "auto",
    directory: Path = MIGRATIONS_DIR,
) -> MigrationResult:
    """Apply every migration not yet applied, each in its own transaction. Idempotent.

    ``conn`` should be a superuser (or database owner) connection in autocommit mode.
    """
    migrations = discover(directory)
    # one migrator at a time per database (init from the CLI and the demo may race)
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        return _migrate(conn, flavor, migrations)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _migrate(conn: Conn, flavor: str, migrations: list[Migration]) -> MigrationResult:
    chosen = detect_flavor(conn, flavor)
    with conn.transaction():
        conn.execute(_BOOTSTRAP)
        conn.execute(
            "INSERT INTO historian_meta (key, value) VALUES ('flavor', %s) ON CONFLICT (key) DO NOTHING",
            (chosen,),
        )
    done = applied_versions(conn)
    result = MigrationResult(chosen, [], [], [])
    for mig in migrations:
        label = f"{mig.version:04d}_{mig.name}"
        if mig.version in done:
            result.already.append(label)
            if done[mig.version][1] != mig.checksum(chosen):
                result.changed.append(label)
            continue
        text = mig.sql_for(chosen)
        if not text.strip():
            continue
        try:
            with conn.transaction():
                conn.execute(text.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, flavor, checksum) VALUES (%s, %s, %s, %s)",
                    (mig.version, mig.name, chosen, mig.checksum(chosen)),
                )
        except psycopg.Error as exc:
            raise MigrationError(f"migration {label} ({chosen}) failed: {exc}") from exc
        log.info("applied migration %s (%s)", label, chosen)
        result.applied.append(label)
    return result


def set_meta(conn: Conn, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO historian_meta (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        (key, value),
    )
