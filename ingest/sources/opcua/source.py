"""The OPC-UA source: an asyncua client whose subscriptions fill columnar buffers, emitted as SAMPLES batches.

Fast path: asyncua 2.x delivers each data change to a callback handler in a task of its own, or through a
queue of per-value event objects, both costly per value. This source instead subclasses ``Subscription``
and takes the whole ``PublishResult`` in ``publish_callback`` (``subscription``). With ``fast_decode`` (the
default) the session's publish responses are decoded by :mod:`ingest.sources.opcua.fastdecode` straight
into column lists, which this source turns into numpy chunks without a Python
step per value; responses that decoder declines (strings, arrays, status changes) go through asyncua and a
one-pass loop over ``MonitoredItems``. A flush concatenates the chunks into one Arrow batch (every
``batch_ms`` or ``batch_rows``, whichever first).

Nodes are named by namespace URI or browse path and resolved again at every connect. On a lost connection the
source reconnects with backoff, recreates its subscriptions and emits a ``connection`` event for the gap
(start = last value before the loss, end = first value after it, cause). Sessions and their security:
``security``; node names: ``nodes``; server and client certificates: ``certs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaError

from edge.core.component import Emit, Role
from edge.core.datamodel import EVENTS, EventKind, batch_from_rows, event_row, samples_from_arrays
from edge.core.envelope import Envelope, batch_id_for
from edge.core.settings import PipelineSettings
from ingest.settings import OpcUaSourceSettings
from ingest.sources.opcua import fastdecode
from ingest.sources.opcua.certs import CertificateRefused, ClientCertificateRejected
from ingest.sources.opcua.columns import Columns
from ingest.sources.opcua.fastdecode import DataChangeColumns
from ingest.sources.opcua.nodes import NodeName, NodeNameError, Resolver, parse_node_name
from ingest.sources.opcua.probe import check_endpoint_path, wait_retry
from ingest.sources.opcua.security import open_client
from ingest.sources.opcua.subscription import subscribe

log = logging.getLogger("ingest.sources.opcua")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NAN = math.nan


def now_us() -> int:
    return time.time_ns() // 1000


class OpcUaSource:
    """Supervisor component (role "source") reading one OPC-UA server into SAMPLES envelopes."""

    role: Role = "source"

    def __init__(
        self,
        settings: OpcUaSourceSettings,
        emit: Emit,
        *,
        pipeline: PipelineSettings | None = None,
        batch_ms: int | None = None,
        batch_rows: int | None = None,
    ) -> None:
        pipeline = pipeline or PipelineSettings.model_validate({})
        self.settings = settings
        self.name = settings.name
        self.emit = emit
        self.batch_ms = batch_ms if batch_ms is not None else pipeline.batch_ms
        self.batch_rows = batch_rows if batch_rows is not None else pipeline.batch_rows
        self.tags = [n.tag for n in settings.nodes]
        self.node_names: list[NodeName] = [parse_node_name(n.node) for n in settings.nodes]
        self._tag_dict = pa.array(self.tags, type=pa.string())
        self._cols = Columns()
        self._ts_mode = settings.timestamp
        self._stop = asyncio.Event()
        self._emit_lock = asyncio.Lock()
        self._epoch_us = 0
        self._seq = 0
        self._event_seq = 0
        self._client: Client | None = None
        self._lost: asyncio.Event | None = None
        self._lost_cause = ""
        self._gap_start_us: int | None = None
        self._gap_cause = ""
        self._pending_events: list[dict[str, Any]] = []
        self._reported: set[str] = set()
        self._last_data_us = 0
        # counters for health and tests
        self.values_received = 0
        self.batches_emitted = 0
        self.connects = 0
        self.last_error: str | None = None
        self.connected = asyncio.Event()
        self.resolved: dict[str, str] = {}  # tag -> node id used in the current session

    # -- component ----------------------------------------------------------------------------------
    async def run(self) -> None:
        self._stop.clear()
        self._epoch_us = now_us()
        self._seq = 0
        flusher = asyncio.create_task(self._flush_loop(), name=f"{self.name}-flush")
        s = self.settings
        backoff = s.reconnect_min_s
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                security_refusal = False
                try:
                    cause = await self._session()
                except (CertificateRefused, ClientCertificateRejected) as exc:
                    # a certificate problem needs a person: said once (log and event), then retried slowly
                    cause, security_refusal = str(exc), True
                    self._report_once(exc, "certificate refused", {
                        "endpoint": s.endpoint, "reason": type(exc).__name__,
                        "thumbprint": exc.info.thumbprint if exc.info is not None else None,
                        "subject": exc.info.subject if exc.info is not None else None,
                        "path": str(exc.info.path) if exc.info is not None and exc.info.path else None})
                except (OSError, TimeoutError, ConnectionError, UaError, NodeNameError) as exc:
                    cause = f"{type(exc).__name__}: {exc}"
                    log.warning("opc-ua connection failed", extra={"source": self.name, "error": cause})
                self.last_error = None if cause is None else cause
                if cause is None or self._stop.is_set():
                    break
                self._open_gap(cause)
                if time.monotonic() - started > 30:
                    backoff = s.reconnect_min_s
                delay = s.reconnect_max_s if security_refusal else backoff
                # while waiting, a TCP connect every PROBE_S: a server that comes back is tried at once
                # (values again within seconds of its return, whatever the outage's length)
                if await wait_retry(s.endpoint, delay, self._stop, probe=not security_refusal):
                    backoff = s.reconnect_min_s
                else:
                    backoff = min(backoff * 2, s.reconnect_max_s)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self.flush()

    async def stop(self) -> None:
        self._stop.set()
        if self._lost is not None:
            self._lost.set()

    # -- one session ------------------------------------------------------------------------------
    async def connect(self) -> Client:
        """Open a session with the configured security; raises :class:`CertificateRefused` for an
        untrusted server certificate."""
        return await open_client(self.settings, self.name)

    async def _session(self) -> str | None:
        """Connect, subscribe, take data until the connection is lost (returns the cause) or stop (None)."""
        s = self.settings
        client = await self.connect()
        self._client = client
        lost = self._lost = asyncio.Event()
        self._lost_cause = ""
        extra_loops: list[asyncio.Task[None]] = []

        async def on_lost(exc: Exception) -> None:
            self._lost_cause = self._lost_cause or f"connection lost: {type(exc).__name__}: {exc}"
            lost.set()

        client.connection_lost_callback = on_lost
        try:
            resolver = Resolver(client)
            await resolver.refresh()
            handles: dict[int, int] = {}
            items: list[tuple[int, ua.NodeId]] = []
            self.resolved = {}
            for i, name in enumerate(self.node_names):
                try:
                    nodeid = await resolver.resolve(name)
                except NodeNameError as exc:
                    log.warning("node not resolved", extra={"source": self.name, "tag": self.tags[i],
                                                            "error": str(exc)})
                    continue
                handles[i + 1] = i
                items.append((i, nodeid))
                self.resolved[self.tags[i]] = nodeid.to_string()
            if not items and self.node_names:
                raise NodeNameError(f"source {self.name}: none of {len(self.node_names)} nodes resolved")
            if s.fast_decode:
                fastdecode.install(client.uaclient.session)
            chunk = s.max_nodes_per_subscription
            for start in range(0, len(items), chunk):
                await subscribe(self, client, items[start:start + chunk], handles)
            # asyncua keeps one publish request in flight; with several subscriptions (or a slow link)
            # the server then holds notifications back. Extra publish loops keep more requests queued.
            session = client.uaclient.session
            n_subs = -(-len(items) // chunk)
            in_flight = s.publish_requests or min(16, n_subs + 1)
            for _ in range(in_flight - 1):
                extra_loops.append(asyncio.create_task(session._publish_loop()))
            warning = await check_endpoint_path(client, s.endpoint)
            if warning:
                self._report_once(warning, "endpoint path", {"endpoint": s.endpoint}, level=logging.WARNING)
            self.connects += 1
            self.connected.set()
            log.info("opc-ua source subscribed", extra={"source": self.name, "endpoint": s.endpoint,
                                                        "nodes": len(items), "ns": resolver.namespaces[1:]})
            stop_wait = asyncio.create_task(self._stop.wait())
            lost_wait = asyncio.create_task(lost.wait())
            await asyncio.wait([stop_wait, lost_wait], return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            lost_wait.cancel()
            if self._stop.is_set():
                return None
            return self._lost_cause or "connection lost"
        finally:
            self.connected.clear()
            for t in extra_loops:
                t.cancel()
            self._client = None
            self._lost = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)

    # -- data path (runs inside asyncua's publish loop) ---------------------------------------------
    def _take(self, items: list[ua.MonitoredItemNotification], handles: dict[int, int]) -> None:
        recv = now_us()
        cols = self._cols
        ts_a, recv_a, tag_a, val_a, q_a = (cols.ts.append, cols.recv.append, cols.tag.append,
                                           cols.val.append, cols.q.append)
        mode = self._ts_mode
        epoch, us, nan = _EPOCH, _US, _NAN
        n = 0
        for item in items:
            ti = handles.get(item.ClientHandle)
            if ti is None:
                continue
            dv = item.Value
            var = dv.Value
            v = var.Value if var is not None else None
            if v.__class__ is float:
                fv = v
            else:
                try:
                    fv = float(v)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    fv = nan
            sc = dv.StatusCode
            code = sc.value if sc is not None else 0
            q_a(0 if code < 0x40000000 else (1 if code < 0x80000000 else 2))
            if mode == "source":
                stamp = dv.SourceTimestamp or dv.ServerTimestamp
            elif mode == "server":
                stamp = dv.ServerTimestamp
            else:
                stamp = None
            ts_a((stamp - epoch) // us if stamp is not None else recv)
            recv_a(recv)
            tag_a(ti)
            val_a(fv)
            n += 1
        if n:
            cols.n += n
            self._got(n, recv)

    def _got(self, n: int, recv: int) -> None:
        self.values_received += n
        self._last_data_us = recv
        if self._gap_start_us is not None:
            self._close_gap(recv)

    def _take_columns(self, dc: DataChangeColumns, handles: dict[int, int]) -> None:
        """The fast decoder's columns: vectorised, no per-value Python."""
        if not dc.handles:
            return
        recv = now_us()
        tag = np.array(dc.handles, dtype=np.int64) - 1  # client handle = tag index + 1
        keep = (tag >= 0) & (tag < len(self.tags))
        status = np.array(dc.status, dtype=np.uint32)
        q = np.minimum(status >> 30, 2).astype(np.int16)
        recv_a = np.full(tag.size, recv, dtype=np.int64)
        if self._ts_mode == "receive":
            ts = recv_a
        else:
            srv = np.array(dc.server_us, dtype=np.int64)
            ts = np.where(srv > 0, srv, recv_a)
            if self._ts_mode == "source":
                src = np.array(dc.source_us, dtype=np.int64)
                ts = np.where(src > 0, src, ts)
        val = np.array(dc.values, dtype=np.float64)
        if not keep.all():
            tag, ts, recv_a, val, q = tag[keep], ts[keep], recv_a[keep], val[keep], q[keep]
        n = int(tag.size)
        if n:
            self._cols.chunks.append((ts, recv_a, tag.astype(np.int32), val, q))
            self._cols.n += n
            self._got(n, recv)

    def _status_change(self, status: ua.StatusCode) -> None:
        if (status is not None and not status.is_good()
                and self._lost is not None and not self._lost.is_set()):
                self._lost_cause = f"subscription status {status.name}"
                self._lost.set()

    def _report_once(self, problem: object, what: str, detail: dict[str, Any],
                     level: int = logging.ERROR) -> None:
        """Log ``problem`` and record it as a ``connection`` event, once per distinct message."""
        text = str(problem)
        if text in self._reported:
            return
        self._reported.add(text)
        log.log(level, "%s", text, extra={"source": self.name})
        self._pending_events.append(event_row(EventKind.CONNECTION, f"{self.name}: {what}: {text}",
                                              {**detail, "message": text}, source=self.name))

    # -- gaps ---------------------------------------------------------------------------------------
    def _open_gap(self, cause: str) -> None:
        if self._gap_start_us is None:
            self._gap_start_us = self._last_data_us or now_us()
            self._gap_cause = cause
            log.warning("opc-ua data gap started", extra={"source": self.name, "cause": cause})

    def _close_gap(self, end_us: int) -> None:
        start = self._gap_start_us
        assert start is not None
        self._gap_start_us = None
        detail = {"start": _iso(start), "end": _iso(end_us), "start_us": start, "end_us": end_us,
                  "duration_s": round((end_us - start) / 1e6, 3), "cause": self._gap_cause,
                  "endpoint": self.settings.endpoint}
        self._pending_events.append(event_row(
            EventKind.CONNECTION,
            f"{self.name}: no data from {self.settings.endpoint} for {detail['duration_s']} s "
            f"({self._gap_cause})",
            detail, source=self.name, ts=datetime.fromtimestamp(end_us / 1e6, UTC)))
        log.info("opc-ua data gap closed", extra={"source": self.name, **detail})

    # -- batching ------------------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        period = self.batch_ms / 1000.0
        while True:
            await asyncio.sleep(period)
            if self._cols.n or self._pending_events:
                await self.flush()

    async def flush(self) -> None:
        """Emit what is buffered: pending gap events first, then one samples batch."""
        cols, self._cols = self._cols, Columns()
        events, self._pending_events = self._pending_events, []
        if not cols.n and not events:
            return
        async with self._emit_lock:
            if events:
                self._event_seq += 1
                batch = batch_from_rows(events, EVENTS)
                await self.emit(Envelope("events", batch, batch_id_for(self.name, "events", self._epoch_us,
                                                                       self._event_seq)))
            if cols.n:
                self._seq += 1
                batch = self._samples_batch(cols)
                bid = batch_id_for(self.name, self._epoch_us, self._seq)
                await self.emit(Envelope("samples", batch, bid))
                self.batches_emitted += 1

    def _samples_batch(self, cols: Columns) -> pa.RecordBatch:
        parts: list[tuple[np.ndarray[Any, Any], ...]] = []
        if cols.ts:
            parts.append((np.array(cols.ts, dtype=np.int64), np.array(cols.recv, dtype=np.int64),
                          np.array(cols.tag, dtype=np.int32), np.array(cols.val, dtype=np.float64),
                          np.array(cols.q, dtype=np.int16)))
        parts += cols.chunks
        ts, recv, tag, val, q = (np.concatenate(c) if len(parts) > 1 else c[0]
                                 for c in zip(*parts, strict=True))
        tags = pa.DictionaryArray.from_arrays(pa.array(tag, type=pa.int32()), self._tag_dict)
        return samples_from_arrays(ts, tags, val, source=self.name, quality=q, recv_ts_us=recv)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds")
