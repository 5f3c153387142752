"""A commit that stores insights notifies ``INSIGHTS_CHANNEL`` with its batch id (what wakes the outbox
publisher); other kinds, and a batch the ledger already has, notify nothing."""

from __future__ import annotations

from typing import Any

import psycopg

from edge.core.envelope import Envelope
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.writer import INSIGHTS_CHANNEL, HistorianWriter
from tests.fixtures.historian_helpers import historian as historian  # fixture
from tests.fixtures.historian_helpers import insights_batch, samples_batch


def _listen(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []
    conn.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
    conn.execute(f"LISTEN {INSIGHTS_CHANNEL}")
    return got


def test_insights_commit_notifies_with_its_batch_id(historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, _flavor = historian
    got = _listen(conn)  # a session hears its own notifications, at its commits (PGlite has only one)
    w = HistorianWriter(HistorianSettings.model_validate({}), conn=conn)
    assert w.write_sync(Envelope("samples", samples_batch(50), "s-1"))
    assert w.write_sync(Envelope("insights", insights_batch(3, "a"), "ins-a"))
    assert not w.write_sync(Envelope("insights", insights_batch(3, "a"), "ins-a"))  # stored already
    assert w.write_sync(Envelope("insights", insights_batch(2, "b"), "ins-b"))
    conn.execute("SELECT 1")  # read anything still on the wire
    assert got == [(INSIGHTS_CHANNEL, "ins-a"), (INSIGHTS_CHANNEL, "ins-b")]


async def test_async_insights_commit_notifies_a_listener(pg_dsn: str) -> None:
    from edge.sinks.historian.migrate import migrate

    with psycopg.connect(pg_dsn, autocommit=True) as listener:
        migrate(listener)
        listener.execute(f"LISTEN {INSIGHTS_CHANNEL}")
        got: list[tuple[str, str]] = []
        w = HistorianWriter(HistorianSettings.model_validate({"dsn": pg_dsn}), dsn=pg_dsn)
        try:
            assert await w.write(Envelope("samples", samples_batch(50), "s-1"))
            assert await w.write(Envelope("insights", insights_batch(3, "a"), "ins-a"))
        finally:
            await w.close()
        for n in listener.notifies(timeout=30, stop_after=1):  # the other session's commit reaches us
            got.append((n.channel, n.payload))
        assert got == [(INSIGHTS_CHANNEL, "ins-a")]  # the first one: the samples commit sent none
