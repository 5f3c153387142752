"""Arrow batches in, rows in the historian, exactly once per batch id.

``HistorianWriter.write(env)`` (async) and ``write_sync(env)`` take an :class:`edge.core.envelope.Envelope` of
kind samples, features, insights, events or dead_letters. In one transaction: the ledger row for
``env.batch_id`` is inserted with ``ON CONFLICT DO NOTHING``; if it was already there the batch was stored
before and nothing else is written (returns False); otherwise the rows are written (returns True).

Write methods: ``copy`` is binary COPY with the COPY stream built by numpy
(``edge.sinks.historian.pgbinary``, no
Python work per row, streamed in chunks of 32k rows); ``insert`` is a multi-row
``INSERT ... SELECT FROM unnest(...)`` in slices.
``auto`` probes once per connection with ``SELECT version()``: a server that reports itself as compiled by
Emscripten (PGlite, whose server process dies on COPY) gets ``insert``, any other ``copy``. The probe never
issues a COPY. Insights always go through ``insert ... ON CONFLICT DO NOTHING`` (an insight id may be
re-emitted in another batch).

Errors: :class:`HistorianUnavailable` when the server cannot be reached or the connection broke (the
connection is dropped and re-opened on the next call; the caller spools the batch and retries later);
:class:`HistorianWriteError` when the server refused the batch itself (bad data, missing schema: retrying
the same batch will not help).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import psycopg
import pyarrow as pa
from psycopg import sql

from edge.core.datamodel import FEATURE_KEY_FIELDS
from edge.core.envelope import Envelope
from edge.sinks.historian.pgbinary import CopyEncoder, EncodeError, PaddingTooLarge
from edge.sinks.historian.settings import HistorianSettings

log = logging.getLogger(__name__)

WriteMethod = Literal["copy", "insert"]
INSERT_SLICE = 5_000  # rows per unnest INSERT statement
THREAD_ROWS = 50_000  # async: encode the COPY chunks of batches this big in a worker thread


class HistorianError(Exception):
    """Base of the writer's errors."""


class HistorianUnavailable(HistorianError):
    """The historian cannot be reached now (connect failed, connection broke, timeout). Spool and retry."""


class HistorianWriteError(HistorianError):
    """The historian refused this batch (data or schema problem). Retrying the same batch will not help."""


@dataclass(frozen=True)
class Column:
    name: str  # table column
    pg_type: str  # timestamptz, float8, int2, int4, bool, text, jsonb, bytea
    source: str | None = None  # Arrow column (default: same name); missing in the batch = NULL


@dataclass(frozen=True)
class TableSpec:
    table: str
    columns: tuple[Column, ...]
    conflict_free: bool = False  # True: always INSERT ... ON CONFLICT DO NOTHING (no COPY)


def _cols(*spec: str) -> tuple[Column, ...]:
    out = []
    for item in spec:
        name, pg_type = item.split(":")
        out.append(Column(name, pg_type))
    return tuple(out)


TABLES: dict[str, TableSpec] = {
    "samples": TableSpec("samples", _cols(
        "ts:timestamptz", "recv_ts:timestamptz", "tag:text", "value:float8", "quality:int2", "flags:int4",
        "source:text", "asset:text", "measure:text", "unit:text", "work_order:text", "product:text",
        "batch:text", "shift:text")),
    "features": TableSpec("features", _cols(
        "window_start:timestamptz", "window_end:timestamptz", "asset:text", "n_samples:int4",
        "good_fraction:float8", "flags:int4", "features:jsonb")),
    "insights": TableSpec("insights", _cols(
        "insight_id:text", "ts:timestamptz", "asset:text", "model:text", "model_version:text",
        "model_sha256:text", "score:float8", "threshold:float8", "severity:text", "window_start:timestamptz",
        "window_end:timestamptz", "top_features:jsonb", "context:jsonb", "quality_flags:int4", "gated:bool"),
        conflict_free=True),
    "events": TableSpec("events", _cols(
        "ts:timestamptz", "kind:text", "source:text", "asset:text", "message:text", "detail:jsonb")),
    "dead_letters": TableSpec("dead_letters", _cols(
        "ts:timestamptz", "source:text", "tag:text", "reason:text", "detail:text", "payload:bytea")),
}
_REQUIRED: dict[str, frozenset[str]] = {
    "samples": frozenset({"ts", "recv_ts", "tag", "quality", "source"}),
    "features": frozenset({"window_start", "window_end", "asset", "n_samples", "good_fraction"}),
    "insights": frozenset({"insight_id", "ts", "asset", "model", "model_version", "model_sha256", "threshold",
                           "severity", "window_start", "window_end"}),
    "events": frozenset({"ts", "kind", "source", "message"}),
    "dead_letters": frozenset({"ts", "source", "reason"}),
}
_FEATURE_KEYS = frozenset(f.name for f in FEATURE_KEY_FIELDS)
_PG_ARRAY = {"timestamptz": "timestamptz[]", "float8": "float8[]", "int2": "int2[]", "int4": "int4[]",
             "int8": "int8[]", "bool": "bool[]", "text": "text[]", "jsonb": "text[]", "bytea": "bytea[]"}


def features_json(batch: pa.RecordBatch) -> pa.Array:
    """The feature columns of a features batch (all but the window keys) as one JSON object per row."""
    names = [n for n in batch.schema.names if n not in _FEATURE_KEYS]
    if not names:
        return pa.array(["{}"] * batch.num_rows, type=pa.string())
    cols = [batch.column(n).to_pylist() for n in names]
    rows = [orjson.dumps(dict(zip(names, vals, strict=True))).decode() for vals in zip(*cols, strict=True)]
    return pa.array(rows, type=pa.string())


def table_columns(kind: str, batch: pa.RecordBatch) -> tuple[TableSpec, list[tuple[pa.Array | None, str]]]:
    """The table for ``kind`` and, per table column, the batch's Arrow column (None: NULL) and PG type."""
    spec = TABLES.get(kind)
    if spec is None:
        raise HistorianWriteError(f"unknown batch kind {kind!r} (expected one of {', '.join(TABLES)})")
    names = set(batch.schema.names)
    missing = sorted(_REQUIRED[kind] - names)
    if missing:
        raise HistorianWriteError(f"{kind} batch lacks required column(s) {', '.join(missing)}")
    out: list[tuple[pa.Array | None, str]] = []
    for col in spec.columns:
        if kind == "features" and col.name == "features":
            out.append((features_json(batch), "jsonb"))
            continue
        src = col.source or col.name
        out.append((batch.column(src) if src in names else None, col.pg_type))
    return spec, out


@functools.cache  # per table, not per write
def _copy_sql(spec: TableSpec) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(spec.table), sql.SQL(", ").join(sql.Identifier(c.name) for c in spec.columns))


@functools.cache
def _insert_sql(spec: TableSpec) -> sql.Composed:
    names = [c.name for c in spec.columns]
    unnest_args = sql.SQL(", ").join(
        sql.SQL("%s::{}").format(sql.SQL(_PG_ARRAY[c.pg_type])) for c in spec.columns)
    select = sql.SQL(", ").join(
        sql.SQL("u.{}::jsonb").format(sql.Identifier(c.name)) if c.pg_type == "jsonb"
        else sql.SQL("u.{}").format(sql.Identifier(c.name))
        for c in spec.columns)
    q = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS u({})").format(
        sql.Identifier(spec.table), sql.SQL(", ").join(sql.Identifier(n) for n in names), select, unnest_args,
        sql.SQL(", ").join(sql.Identifier(n) for n in names))
    if spec.conflict_free:
        q = sql.Composed([q, sql.SQL(" ON CONFLICT DO NOTHING")])
    return q


def _py_values(arr: pa.Array | None, n: int, start: int, stop: int) -> list[Any]:
    if arr is None:
        return [None] * (stop - start)
    part = arr.slice(start, stop - start)
    if pa.types.is_dictionary(part.type):
        part = part.dictionary_decode()
    return list(part.to_pylist())


def insert_params(columns: Sequence[tuple[pa.Array | None, str]], n: int) -> list[list[list[Any]]]:
    """Parameters of the unnest INSERT, one list of column lists per slice of INSERT_SLICE rows."""
    slices = []
    for start in range(0, n, INSERT_SLICE):
        stop = min(n, start + INSERT_SLICE)
        slices.append([_py_values(a, n, start, stop) for a, _ in columns])
    return slices


_LEDGER_SQL = ("INSERT INTO ingest_ledger (batch_id, kind, rows) VALUES (%s, %s, %s) "
               "ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id")


def probe_method(version_text: str) -> WriteMethod:
    """The write method for a server that answers ``SELECT version()`` with ``version_text``."""
    low = version_text.lower()
    return "insert" if ("emscripten" in low or "emcc" in low) else "copy"


def _prepare(columns: list[tuple[pa.Array | None, str]], n: int,
             use_copy: bool) -> CopyEncoder | list[list[list[Any]]]:
    """A COPY encoder or the INSERT parameter slices for the batch."""
    if use_copy:
        try:
            return CopyEncoder(columns, n)
        except PaddingTooLarge:
            pass  # a few very long text values: INSERT is cheaper than a padded matrix
        except EncodeError as exc:
            raise HistorianWriteError(f"cannot encode batch for COPY: {exc}") from exc
    return insert_params(columns, n)


def _refused(exc: psycopg.Error, env: Envelope) -> HistorianError:
    """Map a psycopg error to unavailable (retry later) or write error (the batch itself)."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | psycopg.errors.QueryCanceled):
        return HistorianUnavailable(f"historian unavailable while writing {env.kind} batch {env.batch_id}: "
                                    f"{type(exc).__name__}: {exc}")
    return HistorianWriteError(f"historian refused {env.kind} batch {env.batch_id} ({env.num_rows} rows): "
                               f"{type(exc).__name__}: {exc}")


class HistorianWriter:
    """Writes Envelopes to the historian, idempotently through the ingest ledger.

    Give it settings (it connects with ``settings.dsn`` and the password from ``settings.password``), or
    pass an open connection (``conn=`` sync, ``aconn=`` async) that it uses but does not own. One writer
    serves one connection at a time; use one writer per task.
    """

    name = "historian"

    def __init__(
        self,
        settings: HistorianSettings | None = None,
        *,
        dsn: str | None = None,
        write_method: Literal["auto", "copy", "insert"] | None = None,
        conn: psycopg.Connection[Any] | None = None,
        aconn: psycopg.AsyncConnection[Any] | None = None,
    ) -> None:
        self.settings = settings or HistorianSettings.model_validate({})
        self.dsn = dsn or self.settings.dsn
        self.requested: Literal["auto", "copy", "insert"] = write_method or self.settings.write_method
        self._conn = conn
        self._aconn = aconn
        self._owns_conn = conn is None
        self._owns_aconn = aconn is None
        self._method: WriteMethod | None = None if self.requested == "auto" else self.requested
        self.rows_written = 0
        self.batches_written = 0
        self.batches_skipped = 0

    # --- connection -------------------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"connect_timeout": max(1, int(self.settings.write_timeout_s)),
                              "autocommit": True, "prepare_threshold": None}
        if self.settings.password is not None:
            kw["password"] = self.settings.password.resolve()
        timeout_ms = int(self.settings.write_timeout_s * 1000)
        kw["options"] = f"-c statement_timeout={timeout_ms}"
        return kw

    @property
    def method(self) -> WriteMethod | None:
        """The write method in use (None until probed on the first write under ``auto``)."""
        return self._method

    def _sync_conn(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if not self._owns_conn:
            raise HistorianUnavailable("the historian connection given to the writer is closed")
        try:
            self._conn = psycopg.connect(self.dsn, **self._connect_kwargs())
        except psycopg.Error as exc:
            raise HistorianUnavailable(f"cannot connect to the historian: {exc}") from exc
        if self.requested == "auto":
            self._method = None
        return self._conn

    async def _async_conn(self) -> psycopg.AsyncConnection[Any]:
        if self._aconn is not None and not self._aconn.closed:
            return self._aconn
        if not self._owns_aconn:
            raise HistorianUnavailable("the historian connection given to the writer is closed")
        try:
            self._aconn = await psycopg.AsyncConnection.connect(self.dsn, **self._connect_kwargs())
        except psycopg.Error as exc:
            raise HistorianUnavailable(f"cannot connect to the historian: {exc}") from exc
        if self.requested == "auto":
            self._method = None
        return self._aconn

    def _drop_sync(self) -> None:
        if self._conn is not None and self._owns_conn:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    async def _drop_async(self) -> None:
        if self._aconn is not None and self._owns_aconn:
            try:
                await self._aconn.close()
            except psycopg.Error:
                pass
            self._aconn = None

    def close_sync(self) -> None:
        self._drop_sync()

    async def close(self) -> None:
        await self._drop_async()
        self._drop_sync()

    # --- probing ----------------------------------------------------------------------------------------

    def probe_sync(self) -> WriteMethod:
        if self._method is None:
            conn = self._sync_conn()
            try:
                row = conn.execute("SELECT version()").fetchone()
            except psycopg.Error as exc:
                self._drop_sync()
                raise HistorianUnavailable(f"historian probe failed: {exc}") from exc
            self._method = probe_method(str(row[0]) if row else "")
            log.info("historian write method: %s", self._method)
        return self._method

    async def probe(self) -> WriteMethod:
        if self._method is None:
            conn = await self._async_conn()
            try:
                cur = await conn.execute("SELECT version()")
                row = await cur.fetchone()
            except psycopg.Error as exc:
                await self._drop_async()
                raise HistorianUnavailable(f"historian probe failed: {exc}") from exc
            self._method = probe_method(str(row[0]) if row else "")
            log.info("historian write method: %s", self._method)
        return self._method

    # --- writing ----------------------------------------------------------------------------------------

    def write_sync(self, env: Envelope) -> bool:
        """Store ``env`` once. True if written now, False if its batch id was already in the ledger."""
        spec, columns = table_columns(env.kind, env.batch)
        n = env.num_rows
        method = self.probe_sync()
        use_copy = method == "copy" and not spec.conflict_free
        prepared = _prepare(columns, n, use_copy)
        conn = self._sync_conn()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_LEDGER_SQL, (env.batch_id, env.kind, n))
                if cur.fetchone() is None:
                    self.batches_skipped += 1
                    return False
                if isinstance(prepared, CopyEncoder):
                    if n:
                        with cur.copy(_copy_sql(spec)) as copy:
                            for part in prepared.chunks():
                                copy.write(part)
                else:
                    q = _insert_sql(spec)
                    for p in prepared:
                        cur.execute(q, p)
        except psycopg.Error as exc:
            err = _refused(exc, env)
            if isinstance(err, HistorianUnavailable) or conn.closed or conn.broken:
                self._drop_sync()
                if not isinstance(err, HistorianUnavailable):
                    err = HistorianUnavailable(str(err))
            raise err from exc
        self.rows_written += n
        self.batches_written += 1
        return True

    async def write(self, env: Envelope) -> bool:
        """Store ``env`` once (async). True if written now, False if its batch id was already stored."""
        spec, columns = table_columns(env.kind, env.batch)
        n = env.num_rows
        method = await self.probe()
        use_copy = method == "copy" and not spec.conflict_free
        prepared = _prepare(columns, n, use_copy)
        conn = await self._async_conn()
        try:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.execute(_LEDGER_SQL, (env.batch_id, env.kind, n))
                if await cur.fetchone() is None:
                    self.batches_skipped += 1
                    return False
                if isinstance(prepared, CopyEncoder):
                    if n:
                        async with cur.copy(_copy_sql(spec)) as copy:
                            parts = prepared.chunks()
                            while True:
                                # big batches: encode each chunk off the event loop
                                part = (await asyncio.to_thread(next, parts, None) if n >= THREAD_ROWS
                                        else next(parts, None))
                                if part is None:
                                    break
                                await copy.write(part)
                else:
                    q = _insert_sql(spec)
                    for p in prepared:
                        await cur.execute(q, p)
        except psycopg.Error as exc:
            err = _refused(exc, env)
            if isinstance(err, HistorianUnavailable) or conn.closed or conn.broken:
                await self._drop_async()
                if not isinstance(err, HistorianUnavailable):
                    err = HistorianUnavailable(str(err))
            raise err from exc
        self.rows_written += n
        self.batches_written += 1
        return True
