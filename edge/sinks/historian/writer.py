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
re-emitted in another batch). A transaction that stores insights also sends ``pg_notify`` on
``INSIGHTS_CHANNEL`` (delivered at its commit): what wakes the outbox publisher.

Errors: :class:`HistorianUnavailable` when the server cannot be reached or the connection broke (the
connection is dropped and re-opened on the next call; the caller spools the batch and retries later);
:class:`HistorianWriteError` when the server refused the batch itself (bad data, missing schema: retrying
the same batch will not help).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import psycopg

from edge.core.envelope import Envelope
from edge.sinks.historian.batch_sql import LEDGER_SQL, copy_sql, insert_sql, prepare
from edge.sinks.historian.errors import HistorianUnavailable, classify_error
from edge.sinks.historian.pgbinary import CopyEncoder
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.tables import table_columns

log = logging.getLogger(__name__)

WriteMethod = Literal["copy", "insert"]
THREAD_ROWS = 50_000  # async: encode the COPY chunks of batches this big in a worker thread
# Committed insights wake the outbox publishers (LISTEN on this channel) instead of their next poll; the
# notification is sent at commit, so a listener never sees rows that are not there yet. Payload: batch id.
INSIGHTS_CHANNEL = "insights_outbox"
NOTIFY_SQL = "SELECT pg_notify(%s, %s)"


def probe_method(version_text: str) -> WriteMethod:
    """The write method for a server that answers ``SELECT version()`` with ``version_text``."""
    low = version_text.lower()
    return "insert" if ("emscripten" in low or "emcc" in low) else "copy"


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
        prepared = prepare(columns, n, use_copy)
        conn = self._sync_conn()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(LEDGER_SQL, (env.batch_id, env.kind, n))
                if cur.fetchone() is None:
                    self.batches_skipped += 1
                    return False
                if isinstance(prepared, CopyEncoder):
                    if n:
                        with cur.copy(copy_sql(spec)) as copy:
                            for part in prepared.chunks():
                                copy.write(part)
                else:
                    q = insert_sql(spec)
                    for p in prepared:
                        cur.execute(q, p)
                if env.kind == "insights" and n:
                    cur.execute(NOTIFY_SQL, (INSIGHTS_CHANNEL, env.batch_id))
        except psycopg.Error as exc:
            err = classify_error(exc, env)
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
        prepared = prepare(columns, n, use_copy)
        conn = await self._async_conn()
        try:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.execute(LEDGER_SQL, (env.batch_id, env.kind, n))
                if await cur.fetchone() is None:
                    self.batches_skipped += 1
                    return False
                if isinstance(prepared, CopyEncoder):
                    if n:
                        async with cur.copy(copy_sql(spec)) as copy:
                            parts = prepared.chunks()
                            while True:
                                # big batches: encode each chunk off the event loop
                                part = (await asyncio.to_thread(next, parts, None) if n >= THREAD_ROWS
                                        else next(parts, None))
                                if part is None:
                                    break
                                await copy.write(part)
                else:
                    q = insert_sql(spec)
                    for p in prepared:
                        await cur.execute(q, p)
                if env.kind == "insights" and n:
                    await cur.execute(NOTIFY_SQL, (INSIGHTS_CHANNEL, env.batch_id))
        except psycopg.Error as exc:
            err = classify_error(exc, env)
            if isinstance(err, HistorianUnavailable) or conn.closed or conn.broken:
                await self._drop_async()
                if not isinstance(err, HistorianUnavailable):
                    err = HistorianUnavailable(str(err))
            raise err from exc
        self.rows_written += n
        self.batches_written += 1
        return True
