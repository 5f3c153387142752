"""The database goes away (refused, then black-holed) and comes back: the TUI says so and recovers by itself.

A TCP proxy of the test's own stands between the app and the real PostgreSQL, so the test can cut the
network without touching the shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlparse, urlunparse

import pytest

from tests.fixtures.tui_support import Historian, fixed_clock, make_historian, wait_until
from tui.app import EdgeTui
from tui.historian_source import HistorianSource
from tui.screens.help import HelpScreen
from tui.screens.overview import OverviewScreen
from tui.widgets.status import StatusBar


@pytest.fixture
def historian(pg_dsn: str) -> Historian:
    return make_historian(pg_dsn)


class Proxy:
    """Forwards 127.0.0.1:<port> to the target. ``cut()`` drops every connection and refuses new ones;
    ``blackhole()`` accepts but forwards nothing; ``restore()`` forwards again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.mode = "forward"
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        if self.mode == "blackhole":
            with contextlib.suppress(Exception):
                await reader.read()  # hold it open, say nothing
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.ensure_future(coro)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _drop_all(self) -> None:
        for w in list(self.writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self.writers.clear()

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        self._drop_all()
        await self.server.wait_closed()
        self.server = None

    async def blackhole(self) -> None:
        if self.server is None:
            await self.start()
        self.mode = "blackhole"
        self._drop_all()

    async def restore(self) -> None:
        self.mode = "forward"
        if self.server is None:
            await self.start()

    async def close(self) -> None:
        if self.server is not None:
            await self.cut()
        for t in list(self.tasks):
            t.cancel()


def via(dsn: str, port: int) -> str:
    u = urlparse(dsn)
    return urlunparse(u._replace(netloc=f"{u.username}@127.0.0.1:{port}"))


def status(app: EdgeTui) -> str:
    return str(app.screen.query_one(StatusBar).render())


async def test_database_down_then_back(historian: Historian) -> None:
    u = urlparse(historian.reader_dsn)
    proxy = Proxy(u.hostname or "127.0.0.1", u.port or 5432)
    await proxy.start()
    source = HistorianSource(via(historian.reader_dsn, proxy.port), timeout_s=1.0, connect_timeout_s=1.0,
                             max_backoff_s=1.0)
    app = EdgeTui(source, clock=fixed_clock, operator="alice", poll_s=0.3)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen) and app.connected)
            assert "historian connected" in status(app)

            await proxy.cut()  # refused: the server is gone
            await wait_until(pilot, lambda: not app.connected, timeout=15)
            await pilot.pause(0.1)
            assert "DISCONNECTED" in status(app)
            await pilot.press("question_mark")  # still answers keys
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))

            await proxy.restore()
            await wait_until(pilot, lambda: app.connected, timeout=15)
            await pilot.pause(0.1)
            assert "historian connected" in status(app)

            await proxy.blackhole()  # slow: connections hang, nothing answers
            await wait_until(pilot, lambda: not app.connected, timeout=15)
            assert "timed out" in (app.last_error or "") or "DISCONNECTED" in status(app)
            await pilot.press("2")  # switching screens works while the database hangs
            await wait_until(pilot, lambda: app.screen.id == "insights")

            await proxy.restore()
            await wait_until(pilot, lambda: app.connected, timeout=15)
    finally:
        await proxy.close()
