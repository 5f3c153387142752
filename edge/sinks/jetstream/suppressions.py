"""Which insights of a batch fall under an active suppression, asked of the box's historian: the JetStream
sink sends insights beside the historian write, before its trigger has flagged them, so it asks the same
rule (``insight_suppression_of()``, migration 0046) and publishes the batch without those rows."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from edge.core.settings import SecretRef

SUPPRESSED_SQL = """
SELECT t.n - 1 FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[])
    WITH ORDINALITY AS t(asset, model, ts, severity, top, n)
WHERE insight_suppression_of(t.asset, t.model, t.ts, t.severity, t.top::jsonb) IS NOT NULL
"""


def question(batch: pa.RecordBatch) -> tuple[list[int], tuple[list[Any], ...]]:
    """The batch's alarming rows (warning or alarm: an ok row is never suppressed) and ``SUPPRESSED_SQL``'s
    arguments for them: asset, model, ts, severity, top features."""
    severity = batch.column("severity").cast(pa.string())
    alarming = pc.is_in(severity, value_set=pa.array(["warning", "alarm"]))
    idx = [i for i, v in enumerate(alarming.to_pylist()) if v]
    take = pa.array(idx, type=pa.int64())

    def col(name: str) -> list[Any]:
        values: list[Any] = batch.column(name).take(take).cast(pa.string()).to_pylist()
        return values

    return idx, (col("asset"), col("model"), batch.column("ts").take(take).to_pylist(), col("severity"),
                 col("top_features"))


class HistorianSuppressions:
    """Which rows of an insights batch fall under an active suppression, asked of the box's historian
    (``insight_suppression_of``) over one connection, each question bounded by ``timeout_s``."""

    def __init__(self, dsn: str, *, password: SecretRef | None = None, timeout_s: float = 1.0) -> None:
        self.dsn = dsn
        self.password = password
        self.timeout_s = timeout_s
        self._conn: Any = None

    async def suppressed(self, batch: pa.RecordBatch) -> list[int]:
        """Indices of the suppressed rows; raises when the historian cannot answer in time."""
        idx, args = question(batch)
        if not idx:
            return []  # an ok row is never suppressed: no question to ask
        try:
            rows = await asyncio.wait_for(self._ask(args), self.timeout_s)
        except BaseException:
            await self.close()  # a fresh connection next time
            raise
        return [idx[int(r[0])] for r in rows]

    async def _ask(self, args: tuple[list[Any], ...]) -> list[Any]:
        import psycopg

        if self._conn is None:
            kw: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(self.timeout_s))}
            if self.password is not None:
                kw["password"] = self.password.resolve()
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, **kw)
        cur = await self._conn.execute(SUPPRESSED_SQL, args)
        rows: list[Any] = await cur.fetchall()
        return rows

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)
