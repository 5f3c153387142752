"""The historian sink: envelopes from a bounded queue into the historian, through the spool when it is away.

Delivery rules:

- An envelope's ``acks`` run only once its batch is committed to the historian (or found already there by the
  ledger) or durably written to the spool. A crash before that costs nothing: the source delivers again.
- When a write fails or passes ``write_timeout_s``, the historian is marked away, and batches go to the spool
  until a probe (one live or spooled batch, every ``retry_interval_s``) commits again.
- When the spool refuses a batch (``refuse_new`` policy, full), the sink holds that batch and stops taking
  from its queue: the queue fills, sources block on it, and the MQTT source acknowledges nothing, so the
  broker keeps the data. It retries the historian, then the spool, every ``retry_interval_s``.
- When the historian answers again, the spool drains in order, oldest segment first, paced at
  ``drain_rows_per_s`` so live batches keep flowing beside it. The ledger makes the replay idempotent: a
  batch committed before its ack was lost is skipped (counted as ``duplicate``).
- A batch the historian rejects for its content (anything but unavailability) is counted ``rejected`` with
  reason ``write_error``, logged with an event, and acknowledged: retrying it cannot succeed.

Events: by default the sink writes its own events (kind ``spool``: historian away/back, spool full, drained;
kind ``runtime``: a rejected batch) to the historian through itself. With an ``on_event(kind, message,
detail)`` hook, the hook's owner records them instead (``write_events=True`` for both).

Insights need nothing special here: migration 0040 puts every inserted insight row into ``insights_outbox`` by
a trigger, in the same transaction; :mod:`edge.sinks.outbox.publisher` drains it.

Wiring::

    inbox: asyncio.Queue[Envelope] = asyncio.Queue(config.pipeline.queue_batches)
    spool = Spool(config.spool)
    sink = HistorianSink(inbox, writer, spool, write_timeout_s=config.historian.write_timeout_s)
    supervisor.add(sink)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import Any, Literal, Protocol

import psycopg

from edge.core.component import EventHook, Role
from edge.core.datamodel import EVENTS, EventKind, batch_from_rows, event_row
from edge.core.envelope import Envelope, batch_id_for
from edge.core.metrics import METRICS, Metrics
from edge.sinks.historian.spool import Spool, SpoolFull

log = logging.getLogger("edge.sinks.historian")

Outcome = Literal["committed", "duplicate", "rejected"]


class BatchWriter(Protocol):
    """What the sink needs from :class:`edge.sinks.historian.writer.HistorianWriter`."""

    async def write(self, envelope: Envelope) -> bool:
        """Commit the batch and its ledger row in one transaction; False when the ledger already has it.

        Raises ``HistorianUnavailable`` (or a connection error) when the database cannot be reached.
        """
        ...


def is_unavailable(exc: BaseException) -> bool:
    """Is this the historian being away (retry later), rather than the batch being unacceptable?"""
    if isinstance(exc, TimeoutError | OSError | ConnectionError | psycopg.OperationalError
                  | psycopg.InterfaceError):
        return True
    return any(cls.__name__ == "HistorianUnavailable" for cls in type(exc).__mro__)


class HistorianSink:
    """Supervisor component (role ``sink``). See the module docstring for the delivery rules."""

    role: Role = "sink"

    def __init__(self, inbox: asyncio.Queue[Envelope], writer: BatchWriter, spool: Spool, *,
                 name: str = "historian", write_timeout_s: float = 10.0, retry_interval_s: float = 1.0,
                 drain_rows_per_s: int | None = None, metrics: Metrics | None = None,
                 on_event: EventHook | None = None,
                 write_events: bool | None = None) -> None:
        self.name = name
        self.inbox = inbox
        self.writer = writer
        self.spool = spool
        self.write_timeout_s = write_timeout_s
        self.retry_interval_s = retry_interval_s
        self.drain_rows_per_s = drain_rows_per_s or spool.settings.drain_rows_per_s
        self.metrics = metrics or METRICS
        self.on_event = on_event
        # Our own events (historian away/back, spool full/drained) go to the historian through this sink,
        # unless an ``on_event`` hook is given: then the hook's owner records them (say so to get both).
        self.write_events = (on_event is None) if write_events is None else write_events
        self.stage = name
        self._stopping = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._up = True
        self._next_probe = 0.0
        self._replay_wake = asyncio.Event()
        self._replay_pos: tuple[int, int] = (0, 0)  # (segment seq, batches of it already replayed)
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        self.blocked = False  # True while a full spool holds the queue back
        if spool.on_event is None:
            spool.on_event = lambda message, detail: self._record_event(EventKind.SPOOL, message, detail)

    # -- state for health views ------------------------------------------------------------------------

    @property
    def historian_up(self) -> bool:
        return self._up

    # -- component -------------------------------------------------------------------------------------

    async def run(self) -> None:
        self._stopping = asyncio.Event()
        await asyncio.to_thread(self.spool.open)
        if not self.spool.empty():
            self._replay_wake.set()
        replay = asyncio.create_task(self._replay_loop(), name=f"{self.name}-replay")
        try:
            while True:
                if self._stopping.is_set() and self.inbox.empty():
                    break
                if replay.done() and not replay.cancelled() and replay.exception() is not None:
                    raise RuntimeError("spool replay failed") from replay.exception()
                try:
                    envelope = await asyncio.wait_for(self.inbox.get(), 0.1)
                except TimeoutError:
                    await self._flush_events()
                    continue
                try:
                    await self._deliver(envelope)
                finally:
                    self.inbox.task_done()
                if self._events:
                    await self._flush_events()
        finally:
            replay.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await replay
            with contextlib.suppress(Exception):
                await self._flush_events()
            await asyncio.to_thread(self.spool.close)

    async def stop(self) -> None:
        self._stopping.set()

    # -- live path -------------------------------------------------------------------------------------

    async def _deliver(self, envelope: Envelope) -> bool:
        """Commit or spool one envelope, then acknowledge it. False only for our own events batch when the
        spool is full (the caller keeps those rows for later)."""
        n = envelope.num_rows
        if envelope.kind != "events":
            self.metrics.inc(self.stage, "received", n)
        while True:
            if self._up or time.monotonic() >= self._next_probe:
                outcome = await self._write(envelope)
                if outcome is not None:
                    self._count(outcome, envelope, "committed")
                    self._unblock()
                    envelope.acknowledge()
                    return True
            try:
                await asyncio.to_thread(self.spool.append, envelope)
            except SpoolFull:
                if envelope.kind == "events":  # never let our own events hold the stream back
                    return False
                if not self.blocked:
                    self.blocked = True
                    self.metrics.set_gauge("backpressure", 1, stage=self.stage)
                    log.warning("spool full: holding the input queue back", extra={"sink": self.name})
                if self._stopping.is_set():
                    # Nowhere to put it: leave it unacknowledged so the source delivers it again.
                    self.metrics.inc(self.stage, "unacknowledged_at_stop", n)
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.retry_interval_s)
                self._next_probe = 0.0  # probe the historian again at once
                continue
            self._unblock()
            envelope.acknowledge()
            self._replay_wake.set()
            return True

    def _unblock(self) -> None:
        if self.blocked:
            self.blocked = False
            self.metrics.set_gauge("backpressure", 0, stage=self.stage)
            log.info("input queue flows again", extra={"sink": self.name})

    def _count(self, outcome: Outcome, envelope: Envelope, ok_counter: str) -> None:
        if outcome == "committed":
            self.metrics.inc(self.stage, ok_counter, envelope.num_rows)
        elif outcome == "duplicate":
            self.metrics.inc(self.stage, "duplicate", envelope.num_rows)
        else:
            self.metrics.inc(self.stage, "rejected", envelope.num_rows, reason="write_error")

    async def _write(self, envelope: Envelope) -> Outcome | None:
        """Commit one batch. None when the historian is away (and it is now marked so)."""
        try:
            async with self._write_lock:
                fresh = await asyncio.wait_for(self.writer.write(envelope), self.write_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                if isinstance(exc, TimeoutError):
                    await self._reset_writer()
                self._mark_down(exc)
                return None
            detail = {"batch_id": envelope.batch_id, "kind": envelope.kind, "rows": envelope.num_rows,
                      "error": f"{type(exc).__name__}: {exc}"}
            log.error("historian rejected a batch", extra=detail)
            self._record_event(EventKind.RUNTIME, "historian rejected a batch; it is not retried", detail)
            return "rejected"
        self._mark_up()
        return "committed" if fresh else "duplicate"

    async def _reset_writer(self) -> None:
        """After a write we cancelled at the timeout, its connection is in an unknown state: drop it."""
        close = getattr(self.writer, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), 2.0)

    def _mark_down(self, exc: BaseException) -> None:
        self._next_probe = time.monotonic() + self.retry_interval_s
        if self._up:
            self._up = False
            self.metrics.set_gauge("historian_up", 0, stage=self.stage)
            self._record_event(EventKind.SPOOL, "historian unavailable; spooling",
                               {"error": f"{type(exc).__name__}: {exc}"[:500]})

    def _mark_up(self) -> None:
        if not self._up:
            self._up = True
            self.metrics.set_gauge("historian_up", 1, stage=self.stage)
            self._record_event(EventKind.SPOOL, "historian answers again; draining the spool",
                               {"spool_rows": self.spool.rows, "spool_bytes": self.spool.bytes})
            self._replay_wake.set()

    # -- replay ----------------------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        next_at = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._replay_wake.wait(), self.retry_interval_s)
            self._replay_wake.clear()
            while not (self._stopping.is_set() and self.inbox.empty()):
                if not self._up and time.monotonic() < self._next_probe:
                    break
                segment = await asyncio.to_thread(self.spool.oldest)
                if segment is None:
                    break
                envelopes = await asyncio.to_thread(segment.read)
                start = self._replay_pos[1] if self._replay_pos[0] == segment.seq else 0
                log.debug("replaying a spool segment", extra={"segment": segment.seq, "start": start,
                                                              "batches": len(envelopes)})
                finished = True
                for i in range(start, len(envelopes)):
                    env = envelopes[i]
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if not self.spool.contains(segment):  # dropped meanwhile (drop_oldest)
                        break
                    outcome = await self._write(env)
                    if outcome is None:
                        self._replay_pos = (segment.seq, i)
                        finished = False
                        break
                    self._count(outcome, env, "replayed")
                    next_at = max(next_at, time.monotonic() - 1.0) + env.num_rows / self.drain_rows_per_s
                if not finished:
                    break
                await asyncio.to_thread(self.spool.remove, segment)
                self._replay_pos = (0, 0)
                if self.spool.empty():
                    self._record_event(EventKind.SPOOL, "spool drained", {})

    # -- events ----------------------------------------------------------------------------------------

    def _record_event(self, kind: EventKind, message: str, detail: dict[str, Any]) -> None:
        """Queue an event row for the historian (thread-safe: the spool reports from worker threads)."""
        if self.write_events:
            self._events.append(event_row(kind, message, detail, source=self.name))
        if self.on_event is not None:
            try:
                self.on_event(str(kind), message, detail)
            except Exception:
                log.exception("event hook failed")

    async def _flush_events(self) -> None:
        if not self._events:
            return
        rows = []
        while self._events:
            rows.append(self._events.popleft())
        batch = batch_from_rows(rows, EVENTS)
        env = Envelope("events", batch, batch_id_for(self.name, "events", rows[0]["ts"].isoformat(),
                                                     rows[-1]["ts"].isoformat(), len(rows)))
        if not await self._deliver(env):
            # Historian away and spool full: keep the rows (bounded) and try again later.
            self._events.extendleft(reversed(rows))
