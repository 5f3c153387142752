"""Wiring: from an AppConfig to a supervisor holding every component, joined by bounded queues.

::

    sources ──> q_in ──> process (quality gate, assets, units, MES as-of) ──┬──> q_hist ──> historian sink
    (OPC-UA, MQTT)                                                          └──> q_infer ──> inference ─┘
    MES intake ──> context store (used by process)       historian ──(outbox trigger)──┬──> JSON publisher
                                                                                     └──> Sparkplug B node

Every queue is bounded: a slow historian slows the sources instead of filling memory. A source's
acknowledgements travel on the historian-bound envelopes derived from its batch and run once all of them are
committed or spooled.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from contextualize.enrich import Contextualizer
from contextualize.mes_join import attach_context
from contextualize.mes_store import MesContextStore
from edge.app.config import AppConfig
from edge.app.plugins import HISTORIAN, SINKS, SOURCES, BuildContext
from edge.app.queues import InsightsFirstQueue
from edge.core.component import Emit, Role
from edge.core.datamodel import EventKind, event_row, events_batch
from edge.core.envelope import Envelope, batch_id_for, join_acks
from edge.core.metrics import METRICS, Metrics
from edge.core.stages import TransformStage, queue_emit
from edge.core.supervisor import Supervisor
from ingest.deadletter import Reason, dead_letters_from_samples
from ingest.gate import QualityGate

log = logging.getLogger("edge.app.pipeline")


class EventRecorder:
    """Collects events from any component (thread-safe) and hands them on as EVENTS batches every second."""

    role: Role = "stage"

    def __init__(self, emit: Emit, *, name: str = "events", source: str = "edge",
                 interval_s: float = 1.0) -> None:
        self.name = name
        self.emit = emit
        self.source = source
        self.interval_s = interval_s
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = asyncio.Event()
        self._seq = 0
        self.recorded = 0

    def record(self, kind: str, message: str, detail: dict[str, Any] | None = None,
               *, asset: str | None = None, source: str | None = None) -> None:
        row = event_row(kind, message, detail, source=source or self.source, asset=asset)
        with self._lock:
            self._rows.append(row)
            self.recorded += 1

    async def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            self._seq += 1
            batch = events_batch(rows)
            await self.emit(Envelope("events", batch, batch_id_for(self.source, "events", time.time_ns(),
                                                                  self._seq)))

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
            except TimeoutError:
                pass
            await self.flush()
        await self.flush()

    async def stop(self) -> None:
        self._stop.set()


@dataclass
class ProcessStep:
    """The per-batch work between sources and the historian: gate, assets and units, MES context."""

    gate: QualityGate
    contextualizer: Contextualizer
    metrics: Metrics = field(default_factory=lambda: METRICS)
    to_inference: bool = True

    def __call__(self, envelope: Envelope) -> list[Envelope]:
        if envelope.kind != "samples":
            return [envelope]
        n_in = envelope.num_rows
        self.metrics.inc("ingest", "received", n_in)
        kept, rejected = self.gate.apply(envelope.batch, int(time.time() * 1_000_000))
        enriched, unmapped = self.contextualizer.enrich(kept)
        dead = _concat([rejected, unmapped])
        if dead is not None and dead.num_rows:
            for reason, count in _count_by(dead, "reason").items():
                self.metrics.inc("ingest", "rejected", count, reason=reason)
        out: list[Envelope] = []
        parts = 1 + (1 if dead is not None and dead.num_rows else 0)
        acks = join_acks(envelope.acks, parts)
        out.append(Envelope("samples", enriched, batch_id_for(envelope.batch_id, "samples"),
                            acks[:1] if acks else []))
        if parts == 2 and dead is not None:
            out.append(Envelope("dead_letters", dead, batch_id_for(envelope.batch_id, "dead_letters"),
                                acks[1:2] if acks else []))
        return out

    def dead_letter(self, envelope: Envelope, error: Exception) -> list[Envelope]:
        """A batch the gate or the contextualizer raised on: every row a dead letter with the error as its
        detail, carrying the batch's acknowledgements, so the source neither stalls nor loses it silently."""
        if envelope.kind != "samples" or not envelope.num_rows:
            return [envelope]
        n = envelope.num_rows
        detail = f"{type(error).__name__}: {error}"
        dead = dead_letters_from_samples(envelope.batch, np.ones(n, dtype=bool),
                                         np.full(n, str(Reason.PROCESS_ERROR), dtype=object), [detail] * n)
        self.metrics.inc("ingest", "received", n)
        self.metrics.inc("ingest", "rejected", n, reason=str(Reason.PROCESS_ERROR))
        return [Envelope("dead_letters", dead, batch_id_for(envelope.batch_id, "dead_letters"),
                         envelope.acks)]


def _concat(batches: Sequence[pa.RecordBatch | None]) -> pa.RecordBatch | None:
    real = [b for b in batches if b is not None and b.num_rows]
    if not real:
        return None
    if len(real) == 1:
        return real[0]
    table = pa.Table.from_batches(real).unify_dictionaries().combine_chunks()
    return table.to_batches()[0]


def _count_by(batch: pa.RecordBatch, column: str) -> dict[str, int]:
    import pyarrow.compute as pc

    col = batch.column(column)
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    counts = pc.value_counts(col)
    return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}


class Tee:
    """Copies every envelope from ``inbox`` to each of ``outs``; the acks run once every copy is acked."""

    role: Role = "stage"

    def __init__(self, name: str, inbox: asyncio.Queue[Envelope], outs: Sequence[asyncio.Queue[Envelope]]):
        self.name = name
        self.inbox = inbox
        self.outs = list(outs)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not (self._stopping.is_set() and self.inbox.empty()):
            try:
                env = await asyncio.wait_for(self.inbox.get(), 0.1)
            except TimeoutError:
                continue
            acks = join_acks(env.acks, len(self.outs))
            for i, out in enumerate(self.outs):
                await out.put(Envelope(env.kind, env.batch, env.batch_id, acks[i:i + 1]))
            self.inbox.task_done()

    async def stop(self) -> None:
        self._stopping.set()


@dataclass
class Pipeline:
    supervisor: Supervisor
    events: EventRecorder
    mes_store: MesContextStore
    components: dict[str, Any]
    q_in: asyncio.Queue[Envelope]
    q_hist: asyncio.Queue[Envelope]
    q_infer: asyncio.Queue[Envelope] | None


def _section(config: AppConfig, path: str) -> Any:
    """The config section at a dotted ``path`` (``inference.sparkplug``)."""
    node: Any = config
    for part in path.split("."):
        node = getattr(node, part)
    return node


def build_pipeline(
    config: AppConfig,
    *,
    historian_dsn: str | None = None,
    broker_url: str | None = None,
    metrics: Metrics | None = None,
    with_inference: bool = True,
    extra_components: Sequence[Any] = (),
) -> Pipeline:
    """Every component of the appliance for ``config``; ``historian_dsn`` and ``broker_url`` override it."""

    metrics = metrics or METRICS
    dsn = historian_dsn or config.historian.dsn
    url = broker_url or config.broker.url
    pl = config.pipeline
    q_in: asyncio.Queue[Envelope] = asyncio.Queue(pl.queue_batches)
    q_hist: asyncio.Queue[Envelope] = InsightsFirstQueue(pl.queue_batches)  # insights skip the backlog
    q_infer: asyncio.Queue[Envelope] | None = asyncio.Queue(pl.queue_batches) if with_inference else None

    supervisor = Supervisor(shutdown_timeout_s=pl.shutdown_timeout_s)
    events = EventRecorder(queue_emit(q_hist), source=config.box.id)
    supervisor.on_event = lambda kind, message, detail: events.record(kind, message, detail)
    components: dict[str, Any] = {}
    broker = config.broker.model_copy(update={"url": url})
    effective = config.model_copy(update={"broker": broker})  # what the sinks read: the URL override applied
    ctx = BuildContext(box_id=config.box.id, historian_dsn=dsn, historian_password=config.historian.password,
                       broker=broker, pipeline=pl, spool=config.spool, inference=config.inference,
                       metrics=metrics, on_event=events.record, emit=queue_emit(q_in))

    def add(component: Any) -> None:
        components[component.name] = component
        supervisor.add(component)

    for source in SOURCES:
        for settings in getattr(config.sources, source.name):
            add(source.factory(settings, ctx))

    # MES context: intake over MQTT into a store the process step joins against.
    # A stable client id gives the intake a persistent session: MES events sent while it is down arrive later.
    store = MesContextStore()
    if config.mes.enabled:
        from contextualize.mes_intake import MesIntake

        add(MesIntake(config.mes, broker, dsn, store=store, client_id=f"{config.box.id}-mes-intake",
                      db_password=config.historian.password.resolve() if config.historian.password else None))

    contextualizer = Contextualizer.from_settings(config.assets, config.quality.unmapped,
                                                  context_join=lambda b: attach_context(b, store))
    gate = QualityGate(config.quality, contextualizer.model.raw_valid_ranges())
    step = ProcessStep(gate, contextualizer, metrics)

    async def route(envelope: Envelope) -> None:
        if q_infer is not None and envelope.kind == "samples" and envelope.num_rows:
            # Inference gets the rows, not the acks: delivery is the historian's business. It gets them
            # first: a batch that closes windows must not wait for room in a backlogged historian queue.
            await q_infer.put(Envelope("samples", envelope.batch, envelope.batch_id))
        await q_hist.put(envelope)

    add(TransformStage("process", q_in, step, route, on_error=step.dead_letter))

    if q_infer is not None:
        from edge.app.plugins import make_runtime
        from inference.shadow import role_of
        from inference.stage import InferenceStage

        lifecycle = None
        if config.inference.lifecycle.enabled:  # retraining, the managed mode, lifecycle messages
            from edge.app.lifecycle_wiring import lifecycle_component

            lifecycle = lifecycle_component(config, dsn, broker)
            add(lifecycle)

        async def emit_inferred(envelope: Envelope) -> None:
            if envelope.kind == "insights":
                if role_of(envelope.batch) != "champion":
                    # shadow insights: the historian only; the taps (JetStream) are what MES reads
                    await hist_inbox.put(envelope)
                    return
                metrics.inc("inference", "insights", envelope.num_rows)
            elif envelope.kind == "events" and lifecycle is not None:
                lifecycle.manager.observe(envelope.batch)  # drift episodes: triggers and messages
            await q_hist.put(envelope)

        add(InferenceStage(config.inference, q_infer, emit_inferred, make_runtime=make_runtime))

    add(events)
    # Insights for MES and the metrics endpoint: each reads committed rows or counters, in its own task.
    sinks = [c for section, sink in SINKS for c in sink.factory(_section(effective, section), ctx)]
    # A sink with ``tap = True`` (the JetStream publisher) gets a copy of every historian-bound envelope
    # from a tee; the source's acks then wait for the historian and every tap.
    taps: list[asyncio.Queue[Envelope]] = [c.inbox for c in sinks if getattr(c, "tap", False)]  # type: ignore[attr-defined]
    hist_inbox = q_hist
    if taps:
        hist_inbox = InsightsFirstQueue(pl.queue_batches)
        add(Tee("tee", q_hist, [hist_inbox, *taps]))
    for component in HISTORIAN.factory(config.historian, ctx, hist_inbox):
        add(component)
    for component in sinks:
        add(component)
    if any(hasattr(c, "attach_app") for c in sinks):  # what only the top knows: the heartbeat's facts
        from edge.app.fleet.info import app_info

        info = app_info(config, supervisor, components)
        for component in sinks:
            if hasattr(component, "attach_app"):
                component.attach_app(info)
    for component in extra_components:
        add(component)
    events.record(EventKind.SUPERVISOR, "pipeline built", {"components": sorted(components)})
    return Pipeline(supervisor, events, store, components, q_in, q_hist, q_infer)
