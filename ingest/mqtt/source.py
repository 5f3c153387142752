"""The MQTT source: paho-mqtt 2.x in its own network thread, micro-batched into SAMPLES Arrow batches.

- MQTT 5 or 3.1.1, TLS (CA and client certificates), username and password: ``edge.mqtt.make_client``.
- QoS 0 or 1. A persistent session (``clean_start = false`` + a session expiry on MQTT 5, clean session
  off on 3.1.1) with a stable client id, so the broker keeps QoS 1 messages while we are away.
- Manual acknowledgement: with QoS 1 the PUBACK of a message is sent only when every Envelope made from
  the batch holding it has been acknowledged (``Envelope.acks``: committed to the historian or spooled).
  A crash before that costs nothing: the broker delivers the message again.
- Shared subscriptions (``shared_group``: ``$share/GROUP/topic``) split one stream over several appliances;
  every subscription is renewed on each (re)connect, and the client reconnects by itself with backoff.
- Threads: one network thread runs paho's loop *and* the batching: messages are gathered, decoded a chunk
  at a time through a codec (``ingest.codecs``), and cut into batches of ``batch_rows`` rows or
  ``batch_ms`` milliseconds. Finished envelopes go to the event loop through a bounded hand-off
  (``loop.call_soon_threadsafe``), where ``emit`` is awaited; when the hand-off is full the network thread
  waits, stops reading the socket, and the broker holds the messages (QoS 1: up to ``receive_maximum``
  unacknowledged). Doing the batching in the network thread avoids handing the GIL back and forth between
  two busy threads, which cost 3-6x in throughput when paho ran in one thread and the decoding in another.
- ``batch_id`` is a hash of the source name and the topics and payloads of the batch's messages (not their
  packet ids, which a redelivery changes), so a batch that is delivered again whole is recognised.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import queue
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.datamodel import EVENTS, batch_from_rows
from edge.envelope import Envelope, join_acks
from edge.mqtt import connect, make_client
from edge.settings import BrokerSettings
from edge.supervisor import Role
from ingest.codecs import Codec, CodecEvent, Decoded
from ingest.codecs.json_codec import JsonCodec
from ingest.codecs.sparkplug import NAMESPACE, SparkplugCodec, state_payload
from ingest.gate import QualityGate
from ingest.settings import MqttSourceSettings

log = logging.getLogger("ingest.mqtt")

Emit = Callable[[Envelope], Awaitable[None]]
_DONE = object()


def make_codec(settings: MqttSourceSettings) -> Codec:
    """The codec a source's settings name."""
    if settings.codec == "sparkplug":
        return SparkplugCodec(tag_template=settings.sparkplug_tag_template,
                              node_tag_template=settings.sparkplug_node_tag_template,
                              rebirth_interval_s=settings.sparkplug_rebirth_interval_s)
    return JsonCodec.from_settings(settings)


class MqttSource:
    """A supervisor component (role "source") that subscribes to ``settings.topics`` and emits Envelopes.

    ``emit`` receives "samples" envelopes (SAMPLES), "dead_letters" (what the codec, or ``gate`` if given,
    rejected) and "events" (connection, Sparkplug births/deaths/gaps). ``counters`` counts messages,
    samples, acknowledgements, reconnects and every dead-letter reason.
    """

    role: Role = "source"

    def __init__(self, settings: MqttSourceSettings, broker: BrokerSettings, emit: Emit, *,
                 batch_rows: int = 10_000, batch_ms: int = 50, codec: Codec | None = None,
                 gate: QualityGate | None = None, ack_wait_s: float = 5.0, handoff_batches: int = 8,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 30.0,
                 cut_journal: Path | None = None, now_us: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.emit = emit
        self.batch_rows = settings.batch_rows or batch_rows
        self.batch_ms = settings.batch_ms or batch_ms
        self.codec: Codec = codec if codec is not None else make_codec(settings)
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
        self._cur = _Batch(self.name, self.batch_ms)
        self._completed: list[_Batch] = []  # batches cut by the journal, not yet handed over
        self._journal: _CutJournal | None = None
        self._journal_path = cut_journal if cut_journal is not None else settings.cut_journal
        self._wake_at = 1000  # messages to gather before decoding a chunk (adapts to rows a message)
        self._rows_per_msg = 1.0

    # -- callbacks (network thread) ------------------------------------------------------------------------
    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        cur = self._cur
        journal = self._journal
        if journal is not None and cur.n_msgs == 0:
            cur.first_key = _message_key(msg)
            if msg.dup:  # a redelivery: cut it where the batch that began with this message was cut before
                target = journal.lookup(cur.first_key)
                if target is not None:
                    cur.target = target
                    self.counters["cuts_replayed"] += 1
        cur.add_message(msg, self._generation)
        if cur.target is not None and cur.n_msgs >= cur.target:
            self._completed.append(cur)
            self._cur = _Batch(self.name, self.batch_ms)

    def _topics(self) -> list[str]:
        g = self.settings.shared_group
        return [f"$share/{g}/{t}" if g else t for t in self.settings.topics]

    def _on_connect(self, client: Client, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            self.counters["connect_failures"] += 1
            log.warning("MQTT connect refused", extra={"source": self.name, "reason": str(reason)})
            self._event("connection", f"MQTT connect refused: {reason}", {"reason": str(reason)})
            return
        self._generation += 1
        self.counters["connects"] += 1
        host_id = self.settings.sparkplug_host_id
        if host_id is not None:  # Sparkplug 3.0: STATE online (retained, QoS 1) before subscribing
            client.publish(f"{NAMESPACE}/STATE/{host_id}", state_payload(True, self._state_ts_ms), qos=1,
                           retain=True)
        subs: list[tuple[str, int]] = [(t, int(self.settings.qos)) for t in self._topics()]
        client.subscribe(subs)
        self.connected.set()
        present = bool(getattr(flags, "session_present", False))
        self._event("connection", f"MQTT connected (session present: {present})",
                    {"session_present": present, "topics": [t for t, _ in subs]})

    def _on_subscribe(self, client: Client, userdata: Any, mid: int, reasons: list[ReasonCode],
                      properties: Properties | None) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            self.counters["subscribe_failures"] += len(failed)
            self._event("connection", f"MQTT subscription refused: {', '.join(failed)}",
                        {"topics": self._topics()})
        else:
            self.subscribed.set()

    def _on_disconnect(self, client: Client, userdata: Any, flags: Any, reason: ReasonCode,
                       properties: Properties | None) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._stop_flag.is_set():
            self.counters["disconnects"] += 1
            self._event("connection", f"MQTT disconnected: {reason}", {"reason": str(reason)})

    def _event(self, kind: str, message: str, detail: dict[str, Any]) -> None:
        self._events.append(CodecEvent(self._now_us(), kind, message, detail))  # type: ignore[arg-type]

    # -- the network thread --------------------------------------------------------------------------------
    def _network(self, client: Client, loop: asyncio.AbstractEventLoop, ready: asyncio.Event) -> None:
        """paho's loop, reconnects with backoff, and the batching; ends with a flush and the acks sent."""

        def hand_over(item: object) -> None:
            while True:
                try:
                    self._handoff.put(item, timeout=0.1)
                    break
                except queue.Full:  # the event loop is behind: wait (and do not read the socket meanwhile)
                    if self._abandoned.is_set():
                        return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ready.set)

        backoff = self.reconnect_min_s
        need_connect = True
        try:
            while not self._stop_flag.is_set():
                if need_connect:
                    try:
                        client.reconnect()
                        need_connect = False
                        backoff = self.reconnect_min_s
                    except OSError as exc:
                        self.counters["connect_errors"] += 1
                        self._event("connection", f"MQTT connect failed: {exc}", {"error": str(exc)})
                        self._after_loop(hand_over)
                        self._stop_flag.wait(backoff)
                        backoff = min(backoff * 2, self.reconnect_max_s)
                        continue
                cur = self._cur
                timeout = min(0.1, max(0.0, cur.deadline - time.monotonic())) if cur.started else 0.1
                rc = client.loop(timeout=timeout)
                self._after_loop(hand_over)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    need_connect = True
                    self._stop_flag.wait(backoff)
                    backoff = min(backoff * 2, self.reconnect_max_s)
            # stopping: flush what we hold, then keep the connection serviced until the acks are sent
            self._after_loop(hand_over, force=True)
            deadline = time.monotonic() + self.ack_wait_s
            while self._unacked > 0 and time.monotonic() < deadline and client.is_connected():
                client.loop(timeout=0.02)
            host_id = self.settings.sparkplug_host_id
            if host_id is not None and client.is_connected():
                info = client.publish(f"{NAMESPACE}/STATE/{host_id}", state_payload(False, self._state_ts_ms),
                                      qos=1, retain=True)
                deadline = time.monotonic() + 2.0
                while not info.is_published() and time.monotonic() < deadline and client.is_connected():
                    client.loop(timeout=0.02)
            client.disconnect()
            for _ in range(5):
                if client.loop(timeout=0.01) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        finally:
            hand_over(_DONE)

    def _after_loop(self, hand_over: Callable[[object], None], force: bool = False) -> None:
        while self._completed:
            done = self._completed.pop(0)
            self._decode(done)
            hand_over(self._envelopes(done))
        cur = self._cur
        while self._events:
            cur.add_event(self._events.popleft())
        if not cur.started:
            return
        if len(cur.topics) >= self._wake_at:
            self._decode(cur)
        if force or (cur.target is None and (time.monotonic() >= cur.deadline
                                             or cur.decoded.num_rows >= self.batch_rows)) \
                or (cur.target is not None and time.monotonic() >= cur.deadline + 10 * cur.batch_s):
            self._decode(cur)
            self._cur = _Batch(self.name, self.batch_ms)
            hand_over(self._envelopes(cur))

    def _decode(self, cur: _Batch) -> None:
        """Decode the messages gathered so far (a chunk at a time, so fixed costs are shared)."""
        topics, payloads = cur.topics, cur.payloads
        if not topics:
            return
        cur.topics, cur.payloads = [], []
        recv_us = self._now_us()
        try:
            str_topics = [t.decode() for t in topics]
        except UnicodeDecodeError:
            str_topics = [t.decode("utf-8", "replace") for t in topics]
        raw = list(zip(str_topics, payloads, strict=True))
        cur.hash_messages(topics, payloads)
        self.counters["messages"] += len(raw)
        before = cur.rows()
        self.codec.decode(raw, recv_us, cur.decoded)
        rows = cur.rows() - before
        self._rows_per_msg = 0.8 * self._rows_per_msg + 0.2 * max(1.0, rows / len(raw))
        self._wake_at = int(min(5000, max(10, self.batch_rows / self._rows_per_msg)))
        client = self._client
        if cur.decoded.commands and client is not None:
            for cmd in cur.decoded.commands:
                client.publish(cmd.topic, cmd.payload, qos=cmd.qos, retain=cmd.retain)
                self.counters["commands_published"] += 1
            cur.decoded.commands.clear()

    def _envelopes(self, cur: _Batch) -> list[Envelope]:
        if self._journal is not None and cur.first_key is not None:
            self._journal.record(cur.first_key, cur.n_msgs)  # before anything can be committed
        d = cur.decoded
        now = self._now_us()
        batch_id = cur.batch_id()
        envelopes: list[Envelope] = []
        samples = d.to_samples(now)
        dead_batches = []
        if len(d.dead):
            for reason, count in d.dead.counters.items():
                self.counters[f"dead_letter:{reason}"] += count
            dead_batches.append(d.dead.take_batch())
        if self.gate is not None and samples.num_rows:
            samples, gated = self.gate.apply(samples, now)
            if gated.num_rows:
                dead_batches.append(gated)
        self.counters["samples"] += samples.num_rows
        if samples.num_rows:
            envelopes.append(Envelope("samples", samples, batch_id))
        for i, dl in enumerate(dead_batches):
            envelopes.append(Envelope("dead_letters", dl, f"{batch_id}-dl{i}"))
        if d.events:
            envelopes.append(Envelope("events", _events_batch(d.events, self.name), cur.events_id()))
        mids, generation = cur.mids, cur.generation
        self.counters["acks_dropped"] += cur.dropped_mids
        self.counters["redelivered"] += cur.redelivered
        if mids:
            with self._unacked_lock:
                self._unacked += len(mids)
            ack_all = self._acker(mids, generation)
            if envelopes:
                for env, part_done in zip(envelopes, join_acks([ack_all], len(envelopes)), strict=True):
                    env.acks.append(part_done)
            else:
                ack_all()
        self.counters["batches"] += 1
        return envelopes

    def _acker(self, mids: list[int], generation: int) -> Callable[[], None]:
        def ack() -> None:
            client = self._client
            if client is not None and generation == self._generation:
                for mid in mids:
                    client.ack(mid, 1)
                self.counters["acked"] += len(mids)
            else:  # the connection that delivered them is gone: the broker delivers them again
                self.counters["acks_dropped"] += len(mids)
            with self._unacked_lock:
                self._unacked -= len(mids)

        return ack

    # -- the event loop side --------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        self._stop_flag.clear()
        self._abandoned.clear()
        self._handoff = queue.Queue(maxsize=self._handoff.maxsize)
        self._cur = _Batch(self.name, self.batch_ms)
        self._completed = []
        if self._journal_path is not None and self._journal is None:
            self._journal = _CutJournal(Path(self._journal_path))
        s = self.settings
        client, address, props = make_client(self.broker, client_id=self.client_id, clean_start=s.clean_start,
                                             url=s.url, username=s.username, password=s.password, tls=s.tls)
        if props is not None:
            props.ReceiveMaximum = s.receive_maximum
        else:
            client.max_inflight_messages_set(s.receive_maximum)
        if s.qos == 1:
            client.manual_ack_set(True)
        if s.sparkplug_host_id is not None:
            self._state_ts_ms = int(time.time() * 1000)
            client.will_set(f"{NAMESPACE}/STATE/{s.sparkplug_host_id}",
                            state_payload(False, self._state_ts_ms), qos=1, retain=True)
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        self._client = client
        connect(client, address, props, clean_start=s.clean_start, keepalive=self.broker.keepalive_s)
        thread = threading.Thread(target=self._network, args=(client, loop, ready), name=f"mqtt-{self.name}",
                                  daemon=True)
        thread.start()
        try:
            while True:
                await ready.wait()
                ready.clear()
                done = False
                while True:
                    try:
                        item = self._handoff.get_nowait()
                    except queue.Empty:
                        break
                    if item is _DONE:
                        done = True
                        break
                    for env in item:  # type: ignore[attr-defined]
                        await self.emit(env)
                if done:
                    return
        finally:
            self._stop_flag.set()
            self._abandoned.set()
            await asyncio.to_thread(thread.join, self.ack_wait_s + 10)
            self._client = None

    async def stop(self) -> None:
        self._stop_flag.set()


class _Batch:
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
        self.topics.append(msg._topic)
        self.payloads.append(msg.payload)  # type: ignore[arg-type]
        self.n_msgs += 1

    def hash_messages(self, topics: list[bytes], payloads: list[bytes]) -> None:
        """Fold the messages into the batch id: one fixed-size record per message (CRC-32 and Adler-32 of the
        payload, its length, CRC-32 of the topic), so the id does not depend on how the batch was chunked for
        decoding. (blake2b over whole payloads cost 8 us a 7 kB message; this about 3.)"""
        n = len(payloads)
        rec = np.empty((n, 4), dtype=np.uint32)
        rec[:, 0] = np.fromiter(map(zlib.crc32, payloads), dtype=np.uint32, count=n)
        rec[:, 1] = np.fromiter(map(zlib.adler32, payloads), dtype=np.uint32, count=n)
        rec[:, 2] = np.fromiter(map(len, payloads), dtype=np.uint32, count=n)
        rec[:, 3] = np.fromiter(map(zlib.crc32, topics), dtype=np.uint32, count=n)
        self._hash.update(rec.tobytes())

    def add_event(self, ev: CodecEvent) -> None:
        if not self.started:
            self._start()
        self.decoded.events.append(ev)
        self._ev_hash.update(f"{ev.ts_us}\x1e{ev.message}".encode())

    def rows(self) -> int:
        return self.decoded.num_rows

    def batch_id(self) -> str:
        return self._hash.hexdigest()

    def events_id(self) -> str:
        return self._ev_hash.hexdigest() + "-ev"


def _message_key(msg: MQTTMessage) -> str:
    h = hashlib.blake2b(msg._topic, digest_size=10)
    h.update(msg.payload)
    return h.hexdigest()


class _CutJournal:
    """Where this source cut its recent batches: (key of the first message, number of messages).

    A batch's id is the hash of its messages. After a crash the broker delivers the unacknowledged messages
    again; cutting them where they were cut before gives the same batch ids, so the historian's ledger
    recognises the batch that was committed but not yet acknowledged when the process died. Appended (not
    fsynced: it has to survive a process crash, not a power loss) and compacted to the last entries.
    """

    KEEP = 4096

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.cuts: dict[str, int] = {}
        if path.exists():
            for line in path.read_text(errors="replace").splitlines()[-self.KEEP:]:
                key, _, n = line.partition(" ")
                if n.isdigit():
                    self.cuts[key] = int(n)
        self._lines = len(self.cuts)
        self._fh = path.open("a")

    def lookup(self, key: str) -> int | None:
        return self.cuts.get(key)

    def record(self, key: str, n: int) -> None:
        self.cuts[key] = n
        self._fh.write(f"{key} {n}\n")
        self._fh.flush()
        self._lines += 1
        if self._lines > 2 * self.KEEP:
            keep = list(self.cuts.items())[-self.KEEP:]
            self.cuts = dict(keep)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(f"{k} {v}\n" for k, v in keep))
            self._fh.close()
            tmp.replace(self.path)
            self._fh = self.path.open("a")
            self._lines = len(keep)


def _events_batch(events: list[CodecEvent], source: str) -> pa.RecordBatch:
    return batch_from_rows(
        [{"ts": e.ts_us, "kind": str(e.kind), "source": source, "asset": None, "message": e.message,
          "detail": orjson.dumps(e.detail, default=str).decode()} for e in events], EVENTS)
