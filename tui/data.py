"""The data layer of the terminal UI: async reads from the historian as ``edge_reader``, bounded in time.

Every call runs on one ``psycopg.AsyncConnection`` inside a task the caller waits for at most ``timeout_s``
seconds. A call that times out or fails drops the connection (abandoning the task, which cannot hold the
caller) and raises :class:`Unavailable`; the next call reconnects by itself, with a backoff between
attempts. So a slow or dead database shows as "disconnected" on screen and never freezes the app.

The queries read the historian tables named in ``edge/core/datamodel.py`` (samples with their context columns,
features, insights, events, dead_letters) and ``operator_feedback`` (migration 0030). Columns that differ
between historian versions (the feature columns) are found by introspection once per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg.rows import tuple_row

from tui.models import (
    SEVERITY_RANK,
    AssetState,
    ConnectionState,
    DeadLetterRow,
    EquipmentDetail,
    Feedback,
    Health,
    InsightFilter,
    InsightRow,
    MesContext,
    ModelRow,
    Overview,
    StageRate,
    TagSeries,
    severity_rank,
)

log = logging.getLogger("tui.data")
T = TypeVar("T")

QUALITY_WINDOW = timedelta(minutes=15)  # data quality and "live" assets are judged over this window
PLOT_WINDOW = timedelta(minutes=5)  # tag plots cover this much history
PLOT_POINTS = 60
RATE_WINDOW = timedelta(seconds=60)


class Unavailable(Exception):
    """The historian cannot answer now (down, slow, refused); the UI shows it and tries again later."""


class QueryFailed(Unavailable):
    """The historian answered with an error (schema, permission, a refused write); the link itself is fine."""


class DataSource(Protocol):
    """What the screens read. :class:`HistorianSource` is the real one."""

    @property
    def connected(self) -> bool: ...

    @property
    def last_error(self) -> str | None: ...

    async def overview(self, now: datetime) -> Overview: ...

    async def equipment(self, asset: str, now: datetime) -> EquipmentDetail: ...

    async def insights(self, flt: InsightFilter, now: datetime, limit: int = 200) -> list[InsightRow]: ...

    async def models(self, now: datetime) -> list[ModelRow]: ...

    async def health(self, now: datetime) -> Health: ...

    async def record_feedback(self, fb: Feedback) -> int: ...

    async def close(self) -> None: ...


def _sev_case(column: str) -> str:
    whens = " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in SEVERITY_RANK.items())
    return f"(CASE lower({column}) {whens} ELSE 2 END)"


def _as_json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _top_features_text(value: Any, limit: int = 3) -> str:
    data = _as_json(value)
    parts: list[str] = []
    if isinstance(data, list):
        for item in data[:limit]:
            if isinstance(item, dict):
                name = item.get("feature") or item.get("name")
                contrib = item.get("contribution", item.get("value"))
                if isinstance(contrib, int | float):
                    parts.append(f"{name} {contrib:.2f}")
                else:
                    parts.append(str(name))
            else:
                parts.append(str(item))
    elif isinstance(data, dict):
        for name, contrib in list(data.items())[:limit]:
            parts.append(f"{name} {contrib:.2f}" if isinstance(contrib, int | float) else str(name))
    return ", ".join(parts)


def runtime_label(detail: Any) -> str | None:
    """Short runtime text from a runtime's ``describe()``: "onnxruntime CPU", "triton (fallback)"."""
    if not isinstance(detail, dict):
        return None
    runtime = detail.get("runtime") or detail.get("provider")
    if not runtime:
        return None
    text = str(runtime)
    providers = detail.get("providers_in_use")
    if isinstance(providers, list) and providers:
        text += " " + str(providers[0]).replace("ExecutionProvider", "")
    if detail.get("using_fallback"):
        text += " (fallback)"
    return text


_DOWN_WORDS = ("disconnect", "refused", "lost", "unavailable", "fail", "down", "error", "timeout",
               "timed out")
_UP_WORDS = ("connected", "answers again", "drained", "up", "online", "subscribed")


def connection_state(message: str, detail: dict[str, Any]) -> str:
    """"up", "down" or the message, from a connection or spool event (state in detail wins)."""
    state = detail.get("state")
    if isinstance(state, str) and state:
        return state
    low = message.lower()
    if any(w in low for w in _DOWN_WORDS):
        return "down"
    if any(w in low for w in _UP_WORDS):
        return "up"
    return message[:20]


_INSIGHT_COLUMNS = """i.insight_id, i.ts, i.asset::text, i.model::text, i.model_version::text,
    i.model_sha256::text, i.score, i.threshold, i.severity::text, i.top_features, f.action, f.who"""
_FEEDBACK_JOIN = """LEFT JOIN LATERAL (
        SELECT fb.action, fb.who FROM operator_feedback fb
        WHERE fb.insight_id = i.insight_id ORDER BY fb.ts DESC, fb.id DESC LIMIT 1) f ON true"""


def _insight(row: Sequence[Any]) -> InsightRow:
    return InsightRow(
        insight_id=str(row[0]),
        ts=row[1],
        asset=row[2],
        model=row[3],
        model_version=row[4],
        model_sha256=row[5] or "",
        score=row[6],
        threshold=float(row[7]),
        severity=row[8],
        top_features=_top_features_text(row[9]),
        feedback=row[10],
        feedback_by=row[11],
    )


FEATURE_KEY_COLUMNS = {"window_start", "window_end", "asset", "n_samples", "good_fraction", "flags", "id",
                       "batch_id", "model", "model_version"}


class HistorianSource:
    """Reads the historian over one async connection; every call bounded by ``timeout_s``."""

    def __init__(
        self,
        dsn: str,
        *,
        timeout_s: float = 3.0,
        connect_timeout_s: float = 3.0,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_backoff_s = max_backoff_s
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._failures = 0
        self._next_attempt = 0.0
        self._last_error: str | None = None
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._feature_cols: list[str] | None = None
        self._feature_json: str | None = None
        self._tables: set[str] = set()
        self._known_assets: dict[str, AssetState] = {}

    # --- connection -------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    @property
    def last_error(self) -> str | None:
        return self._last_error

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=max(1, int(self.connect_timeout_s)),
            application_name="edge-tui",
            options=f"-c statement_timeout={int(self.timeout_s * 1000)} -c TimeZone=UTC",
            row_factory=tuple_row,
        )
        cur = await conn.execute(
            """SELECT table_name::text FROM information_schema.tables
               WHERE table_schema = ANY(current_schemas(false))"""
        )
        self._tables = {r[0] for r in await cur.fetchall()}
        await self._introspect_features(conn)
        return conn

    async def _introspect_features(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute(
            """SELECT column_name::text, data_type::text FROM information_schema.columns
               WHERE table_name = 'features' AND table_schema = ANY(current_schemas(false))
               ORDER BY ordinal_position"""
        )
        cols: list[str] = []
        self._feature_json = None
        for name, dtype in await cur.fetchall():
            if name in FEATURE_KEY_COLUMNS:
                continue
            if dtype in ("jsonb", "json") and self._feature_json is None:
                self._feature_json = name
            elif dtype in ("double precision", "real", "numeric", "integer", "bigint", "smallint"):
                cols.append(name)
        self._feature_cols = cols

    def _drop(self, reason: str) -> None:
        conn, self._conn = self._conn, None
        self._last_error = reason
        self._failures += 1
        delay = min(self.max_backoff_s, 0.5 * 2 ** min(self._failures, 6))
        self._next_attempt = time.monotonic() + delay
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()  # close the socket now; a stuck task sees an error, not the network

    async def _run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        async with self._lock:
            if self._conn is None or self._conn.closed:
                wait = self._next_attempt - time.monotonic()
                if wait > 0:
                    raise Unavailable(f"{self._last_error or 'disconnected'}; retrying in {wait:.0f}s")
                task: asyncio.Task[Any] = asyncio.ensure_future(self._connect())
                conn = await self._bounded(task, self.connect_timeout_s + 1.0, "connect")
                self._conn = conn
                self._failures = 0
                self._last_error = None
            assert self._conn is not None
            return await self._bounded(asyncio.ensure_future(fn(self._conn)), self.timeout_s, "query")

    async def _bounded(self, task: asyncio.Task[T], timeout: float, what: str) -> T:
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            self._abandoned.add(task)
            task.add_done_callback(self._forget)
            self._drop(f"{what} timed out after {timeout:.0f}s")
            raise Unavailable(self._last_error)
        try:
            return task.result()
        except (psycopg.Error, OSError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            link_ok = self._conn is not None and not self._conn.closed and what == "query"
            if link_ok and isinstance(exc, psycopg.Error) and not isinstance(
                exc, psycopg.OperationalError | psycopg.InterfaceError
            ):
                raise QueryFailed(message) from exc
            self._drop(message)
            raise Unavailable(message) from exc

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # consumed: it failed after we stopped waiting

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)

    # --- reads ------------------------------------------------------------------------------------------

    async def overview(self, now: datetime) -> Overview:
        async def q(conn: psycopg.AsyncConnection[Any]) -> Overview:
            cur = await conn.execute(
                """
                WITH recent AS (
                    SELECT asset::text AS asset, max(ts) AS last_ts, count(*) AS n,
                           count(*) FILTER (WHERE quality = 0 AND flags = 0) AS good
                    FROM samples WHERE ts > %(since)s AND ts <= %(now)s AND asset IS NOT NULL
                    GROUP BY 1),
                latest AS (
                    SELECT DISTINCT ON (asset) asset::text AS asset, severity::text AS severity, ts
                    FROM insights WHERE ts <= %(now)s AND ts > %(since_i)s ORDER BY asset, ts DESC)
                SELECT coalesce(r.asset, l.asset), l.severity, l.ts, r.n, r.good, r.last_ts
                FROM recent r FULL JOIN latest l ON l.asset = r.asset
                """,
                {"now": now, "since": now - QUALITY_WINDOW, "since_i": now - timedelta(days=7)},
            )
            for path, sev, its, n, good, last_ts in await cur.fetchall():
                prev = self._known_assets.get(path)
                self._known_assets[path] = AssetState(
                    path=path,
                    severity=sev if sev is not None else (prev.severity if prev else None),
                    insight_ts=its if its is not None else (prev.insight_ts if prev else None),
                    good_fraction=(good / n) if n else None,
                    last_ts=last_ts if last_ts is not None else (prev.last_ts if prev else None),
                )
            return Overview(tuple(sorted(self._known_assets.values(), key=lambda a: a.path)))

        return await self._run(q)

    async def equipment(self, asset: str, now: datetime) -> EquipmentDetail:
        async def q(conn: psycopg.AsyncConnection[Any]) -> EquipmentDetail:
            since = now - PLOT_WINDOW
            bucket = PLOT_WINDOW / PLOT_POINTS
            cur = await conn.execute(
                """SELECT tag::text, floor(extract(epoch FROM ts - %(since)s) / %(bucket)s)::int AS b,
                          avg(value)
                   FROM samples WHERE asset = %(asset)s AND ts > %(since)s AND ts <= %(now)s
                   GROUP BY 1, 2 ORDER BY 1, 2""",
                {"asset": asset, "since": since, "now": now, "bucket": bucket.total_seconds()},
            )
            series: dict[str, list[float]] = {}
            for tag, _b, value in await cur.fetchall():
                if value is not None:
                    series.setdefault(tag, []).append(float(value))
            cur = await conn.execute(
                """SELECT DISTINCT ON (tag) tag::text, measure::text, unit::text, value, ts, quality,
                          work_order::text, product::text, batch::text, shift::text
                   FROM samples WHERE asset = %(asset)s AND ts > %(since)s AND ts <= %(now)s
                   ORDER BY tag, ts DESC""",
                {"asset": asset, "since": now - QUALITY_WINDOW, "now": now},
            )
            tags: list[TagSeries] = []
            context = MesContext()
            for tag, measure, unit, value, ts, quality, wo, product, batch, shift in await cur.fetchall():
                values = tuple(series.get(tag, ()))
                tags.append(TagSeries(tag, measure, unit, values, value, ts, int(quality)))
                if (wo or product or batch or shift) and (context.since is None or ts > context.since):
                    context = MesContext(wo, product, batch, shift, ts)
            context = await self._mes_context(conn, asset, now) or context
            features, window_end = await self._latest_features(conn, asset, now)
            cur = await conn.execute(
                f"""SELECT {_INSIGHT_COLUMNS} FROM insights i {_FEEDBACK_JOIN}
                    WHERE i.asset = %(asset)s AND i.ts <= %(now)s ORDER BY i.ts DESC LIMIT 20""",
                {"asset": asset, "now": now},
            )
            insights = tuple(_insight(r) for r in await cur.fetchall())
            return EquipmentDetail(asset, tuple(tags), features, window_end, context, insights)

        return await self._run(q)

    async def _mes_context(
        self, conn: psycopg.AsyncConnection[Any], asset: str, now: datetime
    ) -> MesContext | None:
        """The context valid now from ``mes_context`` (migration 0010): the most specific scope wins."""
        if "mes_context" not in self._tables:
            return None
        cur = await conn.execute(
            """SELECT DISTINCT ON (key) key, value, valid_from FROM mes_context
               WHERE (scope = %(asset)s OR starts_with(%(asset)s, scope || '/'))
                 AND valid_from <= %(now)s AND (valid_to IS NULL OR valid_to > %(now)s)
               ORDER BY key, length(scope) DESC, valid_from DESC""",
            {"asset": asset, "now": now},
        )
        found = {key: (value, since) for key, value, since in await cur.fetchall()}
        if not found:
            return None
        since = max(s for _, s in found.values())
        def value(key: str) -> str | None:
            got = found.get(key)
            return str(got[0]) if got else None

        return MesContext(value("work_order"), value("product"), value("batch"), value("shift"), since)

    async def _latest_features(
        self, conn: psycopg.AsyncConnection[Any], asset: str, now: datetime
    ) -> tuple[tuple[tuple[str, float | None], ...], datetime | None]:
        if "features" not in self._tables or self._feature_cols is None:
            return (), None
        cols = list(self._feature_cols)
        if self._feature_json:
            cols.append(self._feature_json)
        if not cols:
            return (), None
        select = ", ".join(f'"{c}"' for c in cols)
        cur = await conn.execute(
            f"""SELECT window_end, {select} FROM features
                WHERE asset = %(asset)s AND window_end <= %(now)s ORDER BY window_end DESC LIMIT 1""",
            {"asset": asset, "now": now},
        )
        row = await cur.fetchone()
        if row is None:
            return (), None
        out: list[tuple[str, float | None]] = []
        for name, value in zip(cols, row[1:], strict=True):
            if name == self._feature_json:
                data = _as_json(value)
                if isinstance(data, dict):
                    out.extend((k, float(v) if isinstance(v, int | float) else None) for k, v in data.items())
            else:
                out.append((name, float(value) if value is not None else None))
        return tuple(sorted(out)), row[0]

    async def insights(self, flt: InsightFilter, now: datetime, limit: int = 200) -> list[InsightRow]:
        async def q(conn: psycopg.AsyncConnection[Any]) -> list[InsightRow]:
            cur = await conn.execute(
                f"""SELECT {_INSIGHT_COLUMNS} FROM insights i {_FEEDBACK_JOIN}
                    WHERE i.ts <= %(now)s
                      AND (%(rank)s::int IS NULL OR {_sev_case("i.severity")} >= %(rank)s::int)
                      AND (%(asset)s::text IS NULL OR i.asset::text ILIKE %(asset)s::text)
                      AND (%(model)s::text IS NULL OR i.model::text ILIKE %(model)s::text)
                    ORDER BY i.ts DESC, i.insight_id LIMIT %(limit)s""",
                {
                    "now": now,
                    "rank": severity_rank(flt.severity) if flt.severity else None,
                    "asset": f"%{flt.asset}%" if flt.asset else None,
                    "model": f"%{flt.model}%" if flt.model else None,
                    "limit": limit,
                },
            )
            return [_insight(r) for r in await cur.fetchall()]

        return await self._run(q)

    async def models(self, now: datetime) -> list[ModelRow]:
        async def q(conn: psycopg.AsyncConnection[Any]) -> list[ModelRow]:
            cur = await conn.execute(
                """SELECT asset::text, model::text, model_version::text, model_sha256::text, max(ts),
                          (array_agg(score ORDER BY ts DESC))[1:40],
                          (array_agg(threshold ORDER BY ts DESC))[1],
                          count(*) FILTER (WHERE score > threshold)
                   FROM insights WHERE ts <= %(now)s AND ts > %(since)s
                   GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 5 DESC""",
                {"now": now, "since": now - timedelta(hours=24)},
            )
            rows = await cur.fetchall()
            runtimes = await self._runtimes(conn, now)
            out: list[ModelRow] = []
            seen: set[tuple[str, str]] = set()
            for asset, model, version, sha, last_ts, scores, threshold, over in rows:
                if (asset, model) in seen:
                    continue  # an older version of a model this equipment has since replaced
                seen.add((asset, model))
                runtime = runtimes.get((model, version)) or runtimes.get((model, None))
                vals = tuple(float(s) for s in reversed(scores or []) if s is not None)
                out.append(ModelRow(asset, model, version, sha or "", runtime, last_ts, vals,
                                    float(threshold) if threshold is not None else None, int(over)))
            return out

        return await self._run(q)

    async def _runtimes(
        self, conn: psycopg.AsyncConnection[Any], now: datetime
    ) -> dict[tuple[str, str | None], str]:
        """Runtime per model from ``runtime`` events (detail: {"model", "version"?, "runtime"/"provider"})."""
        cur = await conn.execute(
            """SELECT DISTINCT ON (1, 2) d->>'model', d->>'version', d::text
               FROM (SELECT ts, CASE WHEN detail IS NULL OR left(btrim(detail::text), 1) <> '{'
                                     THEN NULL ELSE detail::jsonb END AS d
                     FROM events WHERE kind = 'runtime' AND ts <= %(now)s) e
               WHERE d ? 'model' ORDER BY 1, 2, ts DESC""",
            {"now": now},
        )
        out: dict[tuple[str, str | None], str] = {}
        for model, version, detail in await cur.fetchall():
            runtime = runtime_label(_as_json(detail))
            if runtime:
                out[(model, version)] = runtime
                out.setdefault((model, None), runtime)
        return out

    async def health(self, now: datetime) -> Health:
        async def q(conn: psycopg.AsyncConnection[Any]) -> Health:
            stages: list[StageRate] = []
            for stage, table, col in (
                ("ingest (samples)", "samples", "ts"),
                ("features", "features", "window_end"),
                ("insights", "insights", "ts"),
                ("events", "events", "ts"),
                ("dead letters", "dead_letters", "ts"),
            ):
                if table not in self._tables:
                    continue
                cur = await conn.execute(
                    f"""SELECT count(*) FILTER (WHERE {col} > %(since)s), max({col})
                        FROM {table} WHERE {col} <= %(now)s AND {col} > %(day)s""",
                    {"now": now, "since": now - RATE_WINDOW, "day": now - timedelta(days=1)},
                )
                row = await cur.fetchone()
                n, last = (row[0], row[1]) if row else (0, None)
                lag = (now - last).total_seconds() if last is not None else None
                stages.append(StageRate(stage, n / RATE_WINDOW.total_seconds(), lag))
            cur = await conn.execute(
                """SELECT DISTINCT ON (kind, source) kind::text, source::text, ts, message, detail::text
                   FROM events
                   WHERE kind IN ('connection', 'spool') AND ts <= %(now)s AND ts > %(day)s
                   ORDER BY kind, source, ts DESC""",
                {"now": now, "day": now - timedelta(days=1)},
            )
            connections: list[ConnectionState] = []
            spool: int | None = None
            for kind, source, ts, message, detail in await cur.fetchall():
                d = _as_json(detail) if detail else None
                d = d if isinstance(d, dict) else {}
                if kind == "spool":
                    depth = d.get("depth", d.get("spool_rows"))
                    if "drained" in message.lower():
                        depth = 0
                    if isinstance(depth, int | float):
                        spool = int(depth) if spool is None else spool + int(depth)
                    if "depth" in d and "state" not in d:
                        continue  # a plain depth report says nothing about the connection
                name = source if kind == "connection" else f"{source} (historian)"
                connections.append(ConnectionState(name, connection_state(message, d), ts, message))
            cur = await conn.execute(
                """SELECT reason::text, count(*) FROM dead_letters WHERE ts <= %(now)s AND ts > %(day)s
                   GROUP BY 1 ORDER BY 2 DESC, 1""",
                {"now": now, "day": now - timedelta(days=1)},
            )
            reasons = tuple((r, int(n)) for r, n in await cur.fetchall())
            cur = await conn.execute(
                """SELECT ts, source::text, tag, reason::text, detail::text FROM dead_letters
                   WHERE ts <= %(now)s ORDER BY ts DESC LIMIT 50""",
                {"now": now},
            )
            letters = tuple(DeadLetterRow(*r) for r in await cur.fetchall())
            return Health(tuple(stages), spool, tuple(connections), reasons, letters)

        return await self._run(q)

    # --- the one write ----------------------------------------------------------------------------------

    async def record_feedback(self, fb: Feedback) -> int:
        from tui.feedback import insert_feedback

        async def q(conn: psycopg.AsyncConnection[Any]) -> int:
            return await insert_feedback(conn, fb)

        return await self._run(q)
