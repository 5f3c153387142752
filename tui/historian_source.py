"""The historian as the terminal UI reads it, as ``edge_reader``: one bounded query per screen refresh.

The queries read the historian tables named in ``edge/core/datamodel.py`` (samples with their context columns,
features, insights, events, dead_letters), ``mes_context`` when it is there, and ``operator_feedback``.
Columns that differ between historian versions (the feature columns) are found by introspection once per
connection. The time bound and reconnects are :class:`tui.bounded_connection.BoundedConnection`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import psycopg

from edge.sinks.jetstream.fleet_table import BoxRow
from tui.alarm_models import AlarmDetail, ShiftReport
from tui.alarm_source import load_alarm
from tui.bounded_connection import BoundedConnection
from tui.data_source import FleetUnavailable
from tui.fleet_source import FleetSource
from tui.historian_rows import (
    FEEDBACK_JOIN,
    INSIGHT_COLUMNS,
    as_json,
    connection_state,
    insight_row,
    runtime_label,
    severity_case,
)
from tui.lifecycle_source import LifecycleReads
from tui.models import (
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
from tui.shift_report import shift_report

T = TypeVar("T")

QUALITY_WINDOW = timedelta(minutes=15)  # data quality and "live" assets are judged over this window
PLOT_WINDOW = timedelta(minutes=5)  # tag plots cover this much history
PLOT_POINTS = 60
RATE_WINDOW = timedelta(seconds=60)

FEATURE_KEY_COLUMNS = {"window_start", "window_end", "asset", "n_samples", "good_fraction", "flags", "id",
                       "batch_id", "model", "model_version"}


class HistorianSource(LifecycleReads):
    """Reads the historian over one async connection; every call bounded by ``timeout_s``."""

    def __init__(
        self,
        dsn: str,
        *,
        timeout_s: float = 3.0,
        connect_timeout_s: float = 3.0,
        max_backoff_s: float = 8.0,
        fleet: FleetSource | None = None,
    ) -> None:
        self.dsn = dsn
        self.fleet_source = fleet  # the site's heartbeats (NATS), not the historian
        self.timeout_s = timeout_s
        self._link = BoundedConnection(dsn, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                                       max_backoff_s=max_backoff_s, on_connect=self._introspect)
        self._feature_cols: list[str] | None = None
        self._feature_json: str | None = None
        self._tables: set[str] = set()
        self._known_assets: dict[str, AssetState] = {}

    # --- connection -------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def last_error(self) -> str | None:
        return self._link.last_error

    async def _run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        return await self._link.run(fn)

    async def close(self) -> None:
        await self._link.close()

    async def _introspect(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute(
            """SELECT table_name::text FROM information_schema.tables
               WHERE table_schema = ANY(current_schemas(false))"""
        )
        self._tables = {r[0] for r in await cur.fetchall()}
        await self._introspect_features(conn)

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
                f"""SELECT {INSIGHT_COLUMNS} FROM insights i {FEEDBACK_JOIN}
                    WHERE i.asset = %(asset)s AND i.ts <= %(now)s ORDER BY i.ts DESC LIMIT 20""",
                {"asset": asset, "now": now},
            )
            insights = tuple(insight_row(r) for r in await cur.fetchall())
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
                data = as_json(value)
                if isinstance(data, dict):
                    out.extend((k, float(v) if isinstance(v, int | float) else None) for k, v in data.items())
            else:
                out.append((name, float(value) if value is not None else None))
        return tuple(sorted(out)), row[0]

    async def insights(self, flt: InsightFilter, now: datetime, limit: int = 200) -> list[InsightRow]:
        async def q(conn: psycopg.AsyncConnection[Any]) -> list[InsightRow]:
            cur = await conn.execute(
                f"""SELECT {INSIGHT_COLUMNS} FROM insights i {FEEDBACK_JOIN}
                    WHERE i.ts <= %(now)s
                      AND (%(rank)s::int IS NULL OR {severity_case("i.severity")} >= %(rank)s::int)
                      AND (%(asset)s::text IS NULL OR i.asset::text ILIKE %(asset)s::text)
                      AND (%(model)s::text IS NULL OR i.model::text ILIKE %(model)s::text)
                      AND (%(since)s::timestamptz IS NULL OR i.ts > %(since)s::timestamptz)
                    ORDER BY i.ts DESC, i.insight_id LIMIT %(limit)s""",
                {
                    "now": now,
                    "rank": severity_rank(flt.severity) if flt.severity else None,
                    "asset": f"%{flt.asset}%" if flt.asset else None,
                    "model": f"%{flt.model}%" if flt.model else None,
                    "since": now - timedelta(seconds=flt.since_s) if flt.since_s else None,
                    "limit": limit,
                },
            )
            return [insight_row(r) for r in await cur.fetchall()]

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
            runtime = runtime_label(as_json(detail))
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
                d = as_json(detail) if detail else None
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

    async def fleet(self, now: datetime) -> list[BoxRow]:
        if self.fleet_source is None:
            raise FleetUnavailable("no fleet to show: start `edge tui --nats URL` (and --site, --config-dir)")
        return await self.fleet_source.boxes(now)

    async def alarm(self, insight_id: str) -> AlarmDetail:
        return await self._run(lambda conn: load_alarm(conn, self._tables, insight_id))

    async def shift_report(self, line: str, day: date, shift: str | None = None) -> ShiftReport:
        return await self._run(lambda conn: shift_report(conn, line, day, shift))

    # --- the one write ----------------------------------------------------------------------------------

    async def record_feedback(self, fb: Feedback) -> int:
        from tui.feedback import insert_feedback

        async def q(conn: psycopg.AsyncConnection[Any]) -> int:
            return await insert_feedback(conn, fb)

        return await self._run(q)
