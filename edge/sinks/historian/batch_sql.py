"""How one batch becomes SQL: a binary COPY stream, or the parameters of an unnest INSERT.

COPY is built by numpy from the Arrow buffers (:mod:`edge.sinks.historian.pgbinary`, no Python work per row);
``INSERT ... SELECT FROM unnest(...)`` goes in slices of ``INSERT_SLICE`` rows. The ledger row that makes a
batch exactly-once is inserted first, in the same transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from psycopg import sql

from edge.sinks.historian.errors import HistorianWriteError
from edge.sinks.historian.pgbinary import CopyEncoder, EncodeError, PaddingTooLarge
from edge.sinks.historian.tables import TableSpec

INSERT_SLICE = 5_000  # rows per unnest INSERT statement

_PG_ARRAY = {"timestamptz": "timestamptz[]", "float8": "float8[]", "int2": "int2[]", "int4": "int4[]",
             "int8": "int8[]", "bool": "bool[]", "text": "text[]", "jsonb": "text[]", "bytea": "bytea[]"}


@functools.cache  # per table, not per write
def copy_sql(spec: TableSpec) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(spec.table), sql.SQL(", ").join(sql.Identifier(c.name) for c in spec.columns))


@functools.cache
def insert_sql(spec: TableSpec) -> sql.Composed:
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


LEDGER_SQL = ("INSERT INTO ingest_ledger (batch_id, kind, rows) VALUES (%s, %s, %s) "
              "ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id")


def prepare(columns: list[tuple[pa.Array | None, str]], n: int,
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
