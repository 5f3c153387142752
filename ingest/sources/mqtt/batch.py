"""One batch being gathered: the messages' bytes, their QoS 1 packet ids, decoded samples, events, its id."""

from __future__ import annotations

import hashlib
import time

import pyarrow as pa
from paho.mqtt.client import MQTTMessage

from edge.core.datamodel import event_row, events_batch
from ingest.codecs import CodecEvent, Decoded
from ingest.sources.mqtt.decode_worker import DecodedBatch, DecodeWorker, fingerprints


class Batch:
    """What is gathered for one batch: decoded samples, the QoS 1 packet ids, a content hash."""

    def __init__(self, source: str, batch_ms: float = 50.0) -> None:
        self.decoded = Decoded(source)
        self.batch_s = batch_ms / 1000.0
        self.deadline = float("inf")  # monotonic time at which the batch is due
        self.mids: list[int] = []
        self.topics: list[bytes] = []  # gathered, not yet decoded
        self.payloads: list[bytes] = []
        self.redelivered = 0
        self.generation = -1
        self.dropped_mids = 0
        self.started = False
        self.n_msgs = 0
        self.first_key: str | None = None
        self.target: int | None = None  # cut after this many messages (a replayed cut)
        self.replay_id: str | None = None  # a replayed cut keeps the id it was committed under
        self.n_bytes = 0  # payload bytes gathered
        self.seq = -1  # order of cutting (decode workers)
        self.result: DecodedBatch | None = None  # decoded whole (by a worker, or here when there is none)
        self.worker: DecodeWorker | None = None  # the worker decoding it
        self.chunk: tuple[list[bytes], list[bytes], int, int] | None = None  # kept until decoded
        self._hash = hashlib.blake2b(source.encode(), digest_size=16)
        self._ev_hash = hashlib.blake2b(source.encode(), digest_size=16)

    def _start(self) -> None:
        self.started = True
        self.deadline = time.monotonic() + self.batch_s

    def add_message(self, msg: MQTTMessage, generation: int) -> None:
        # keep bytes only (not the MQTTMessage): bytes are not tracked by the garbage collector, and holding
        # thousands of message objects made the collector cost more than paho itself
        if not self.started:
            self._start()
        if generation != self.generation:
            # packet ids of an older connection mean nothing on the new one: those are delivered again
            self.dropped_mids += len(self.mids)
            self.mids = []
            self.generation = generation
        if msg.qos:
            self.mids.append(msg.mid)
            if msg.dup:
                self.redelivered += 1
        payload: bytes = msg.payload  # type: ignore[assignment]
        self.topics.append(msg._topic)
        self.payloads.append(payload)
        self.n_bytes += len(payload)
        self.n_msgs += 1

    def hash_messages(self, topics: list[bytes], payloads: list[bytes]) -> None:
        """Fold the messages into the batch id (``decode_worker.fingerprints``: one fixed-size record per
        message, so the id does not depend on how the batch was chunked for decoding, or by whom)."""
        self._hash.update(fingerprints(topics, payloads))

    def fold(self, res: DecodedBatch) -> None:
        """Fold a batch decoded whole into the batch id."""
        self._hash.update(res.fingerprints)

    def add_event(self, ev: CodecEvent) -> None:
        if not self.started:
            self._start()
        self.decoded.events.append(ev)
        self._ev_hash.update(f"{ev.ts_us}\x1e{ev.message}".encode())

    def rows(self) -> int:
        return self.decoded.num_rows

    def batch_id(self) -> str:
        return self.replay_id if self.replay_id is not None else self._hash.hexdigest()

    def events_id(self) -> str:
        # every event of the batch, also those a codec appended to ``decoded.events`` itself (Sparkplug
        # births, deaths, seq gaps): without them every such batch had the same id and the historian's
        # ledger kept only the first
        h = self._ev_hash.copy()
        for ev in self.decoded.events:
            h.update(f"{ev.ts_us}\x1e{ev.message}".encode())
        return h.hexdigest() + "-ev"


def batch_of_events(events: list[CodecEvent], source: str) -> pa.RecordBatch:
    return events_batch([event_row(e.kind, e.message, e.detail, source=source, ts=e.ts_us) for e in events])
