"""One ``psycopg.AsyncConnection`` to the historian where every call is bounded in time.

Every call runs inside a task the caller waits for at most ``timeout_s`` seconds (and a server-side
``statement_timeout``). A call that times out or fails drops the connection (abandoning the task, which cannot
hold the caller) and raises :class:`~tui.data_source.Unavailable`; the next call reconnects by itself, with a
backoff between attempts. So a slow or dead database shows as "disconnected" and never freezes the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row

from tui.data_source import QueryFailed, Unavailable

T = TypeVar("T")


class BoundedConnection:
    """Connects on demand; ``run(fn)`` gives ``fn`` the connection and waits for it at most ``timeout_s``.

    ``on_connect`` runs on each new connection (inside the connect bound), e.g. to introspect the schema.
    """

    def __init__(
        self,
        dsn: str,
        *,
        timeout_s: float = 3.0,
        connect_timeout_s: float = 3.0,
        max_backoff_s: float = 8.0,
        on_connect: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_backoff_s = max_backoff_s
        self._on_connect = on_connect
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._failures = 0
        self._next_attempt = 0.0
        self._last_error: str | None = None
        self._abandoned: set[asyncio.Task[Any]] = set()

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
        if self._on_connect is not None:
            await self._on_connect(conn)
        return conn

    def _drop(self, reason: str) -> None:
        conn, self._conn = self._conn, None
        self._last_error = reason
        self._failures += 1
        delay = min(self.max_backoff_s, 0.5 * 2 ** min(self._failures, 6))
        self._next_attempt = time.monotonic() + delay
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()  # close the socket now; a stuck task sees an error, not the network

    async def run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
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
