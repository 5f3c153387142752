"""Historian maintenance from the appliance itself: ``fe_maintain_as_writer()`` at start and every interval.

The appliance connects as ``edge_writer``, which holds no DDL rights; migration 0003 gives it one SECURITY
DEFINER function, ``fe_maintain_as_writer()`` (no arguments; settings from ``historian_meta``, written by
``edge historian init`` from config). On plain PostgreSQL it creates the daily partitions ahead and for rows
waiting in a ``*_default`` partition, applies retention, prunes the ingest ledger and published outbox rows,
and refreshes ``samples_1m`` / ``samples_1h``. On TimescaleDB it prunes the ledger and published outbox rows
and reports the native jobs, which own chunks, compression, retention and aggregate refreshes.

Each round opens its own connection (a round an hour needs no connection held in between), calls the function
and records an event with its report (``on_event(kind, message, detail)``: kind ``audit``; a failed round
kind ``runtime``). A database outage is logged and recorded, and the next interval tries again: ``run`` never
raises. ``stop`` ends ``run`` at once; a round in progress is cancelled on the server (the function runs in
one transaction, so nothing is left half done).

Wiring (``edge/app/pipeline.py``)::

    add(HistorianMaintenance(dsn, password=config.historian.password,
                             interval_s=config.historian.maintenance_interval_s, on_event=events.record))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import psycopg

from edge.core.component import EventHook, Role
from edge.core.datamodel import EventKind
from edge.core.settings import SecretRef

log = logging.getLogger("edge.sinks.historian.maintenance")

MAINTAIN = "SELECT fe_maintain_as_writer()"



class HistorianMaintenance:
    """Supervisor component (role ``sink``): runs the historian's maintenance function periodically."""

    role: Role = "sink"

    def __init__(self, dsn: str, *, password: SecretRef | None = None, interval_s: float = 3600.0,
                 name: str = "historian-maintenance", on_event: EventHook | None = None,
                 connect_timeout_s: int = 10) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.name = name
        self.dsn = dsn
        self.password = password
        self.interval_s = interval_s
        self.on_event = on_event
        self.connect_timeout_s = connect_timeout_s
        self._stop = asyncio.Event()
        # for health views and tests
        self.rounds = 0
        self.failures = 0
        self.last_report: str | None = None
        self.last_error: str | None = None

    async def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            round_task = asyncio.create_task(self.run_once(), name=f"{self.name}-round")
            stopper = asyncio.create_task(self._stop.wait())
            try:
                await asyncio.wait({round_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                if not round_task.done():  # stopped mid-round (or we were cancelled): cancel it on the server
                    round_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await round_task
            if self._stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    async def run_once(self) -> str | None:
        """One round: the function's report, or None when it failed (logged and recorded, never raised)."""
        started = time.monotonic()
        try:
            report = await self._call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}".strip()
            hint = ""
            if isinstance(exc, psycopg.errors.UndefinedFunction):
                hint = " (run `edge historian init` as a superuser to apply migration 0003)"
            log.warning("historian maintenance failed; retrying in %.0f s: %s%s",
                        self.interval_s, self.last_error, hint)
            self._event(EventKind.RUNTIME,
                        f"historian maintenance failed; retrying in {self.interval_s:.0f}s",
                        {"component": self.name, "error": self.last_error + hint,
                         "failures": self.failures})
            return None
        self.rounds += 1
        self.last_report = report
        self.last_error = None
        duration = round(time.monotonic() - started, 3)
        log.info("historian maintenance: %s", report, extra={"component": self.name, "duration_s": duration})
        self._event(EventKind.AUDIT, f"historian maintenance: {report}",
                    {"component": self.name, "report": report, "duration_s": duration})
        return report

    async def _call(self) -> str:
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": self.connect_timeout_s}
        if self.password is not None:
            kwargs["password"] = self.password.resolve()
        async with await psycopg.AsyncConnection.connect(self.dsn, **kwargs) as conn:
            cur = await conn.execute(MAINTAIN)
            row = await cur.fetchone()
        return str(row[0]) if row else ""

    def _event(self, kind: str, message: str, detail: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(str(kind), message, detail)
        except Exception:
            log.exception("event hook failed")
