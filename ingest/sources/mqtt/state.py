"""What an MQTT source holds: its settings, the connection's state, counters, the batch being gathered, the
decode workers' bookkeeping. The jobs are layered on it: ``acks`` (envelopes and their acknowledgements),
``workers`` (decoding in worker processes), ``network`` (paho's callbacks and loop), ``source`` (the
component)."""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paho.mqtt.client import Client

from edge.core.component import Emit
from edge.core.settings import BrokerSettings
from ingest.codecs import Codec, CodecEvent
from ingest.gate import QualityGate
from ingest.settings import MqttSourceSettings
from ingest.sources.mqtt.batch import Batch
from ingest.sources.mqtt.decode_worker import DecodeWorker, default_decode_workers
from ingest.sources.mqtt.journal import CutJournal


class SourceState:
    """The state of an MQTT source; see :class:`ingest.sources.mqtt.source.MqttSource` for the parameters."""

    def __init__(self, settings: MqttSourceSettings, broker: BrokerSettings, emit: Emit, *, codec: Codec,
                 batch_rows: int = 10_000, batch_ms: int = 50,
                 gate: QualityGate | None = None, ack_wait_s: float = 5.0, handoff_batches: int = 8,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 30.0,
                 cut_journal: Path | None = None, now_us: Callable[[], int] | None = None,
                 decode_timeout_s: float = 30.0, decode_worker_restarts: int = 3,
                 share_decoding: bool = True) -> None:
        self.settings = settings
        self.name = settings.name
        self.emit = emit
        self.batch_rows = settings.batch_rows or batch_rows
        self.batch_ms = settings.batch_ms or batch_ms
        self.codec: Codec = codec
        self.decode_workers = default_decode_workers(settings)
        self.decode_timeout_s = decode_timeout_s
        self.decode_worker_restarts = decode_worker_restarts
        self.share_decoding = share_decoding
        self._workers: list[DecodeWorker] = []
        self._restarts: deque[float] = deque()  # monotonic times of worker restarts
        self._inflight: deque[Batch] = deque()  # cut, in order, waiting for their decoding
        self._seq = 0
        self._next_poll = 0.0
        self._next_misc = 0.0  # when paho's keepalive bookkeeping is due while draining the read buffer
        self._bytes_per_row = 64.0  # learned: payload bytes per decoded row (where to cut with workers)
        self._cut_bytes = self.batch_rows * self._bytes_per_row
        self._unready = 0  # workers started but not ready yet
        self.gate = gate
        self.ack_wait_s = ack_wait_s
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        self._now_us = now_us or (lambda: time.time_ns() // 1000)
        updates: dict[str, Any] = {}
        if settings.protocol is not None:
            updates["protocol"] = settings.protocol
        if settings.session_expiry_s is not None:
            updates["session_expiry_s"] = settings.session_expiry_s
        self.broker = broker.model_copy(update=updates) if updates else broker
        self.client_id = settings.client_id or f"fe-{settings.name}"
        self.counters: Counter[str] = Counter()
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # set when the broker has granted this connection's subscriptions
        self._handoff: queue.Queue[object] = queue.Queue(maxsize=handoff_batches)
        self._stop_flag = threading.Event()
        self._abandoned = threading.Event()  # run() has ended: nothing takes from the hand-off any more
        self._client: Client | None = None
        self._generation = 0  # +1 per connection: an ack from an older connection is not sent
        self._unacked = 0
        self._unacked_lock = threading.Lock()
        self._state_ts_ms = 0
        self._events: deque[CodecEvent] = deque()
        self._cur = Batch(self.name, self.batch_ms)
        self._completed: list[Batch] = []  # batches cut by the journal, not yet handed over
        self._journal: CutJournal | None = None
        self._journal_path = cut_journal if cut_journal is not None else settings.cut_journal
        self._wake_at = 1000  # messages to gather before decoding a chunk (adapts to rows a message)
        self._rows_per_msg = 1.0

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the decode workers now running."""
        return [w.pid for w in self._workers]

    @property
    def workers_ready(self) -> int:
        """Decode workers that have started and take batches."""
        return sum(1 for w in self._workers if w.ready)

    def _topics(self) -> list[str]:
        g = self.settings.shared_group
        return [f"$share/{g}/{t}" if g else t for t in self.settings.topics]

    def _event(self, kind: str, message: str, detail: dict[str, Any]) -> None:
        self._events.append(CodecEvent(self._now_us(), kind, message, detail))  # type: ignore[arg-type]
