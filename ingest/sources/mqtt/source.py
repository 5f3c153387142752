"""The MQTT source: paho-mqtt 2.x in its own network thread, micro-batched into SAMPLES Arrow batches.

- MQTT 5 or 3.1.1, TLS (CA and client certificates), username and password: ``edge.core.mqtt.make_client``.
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
- Decode workers (``decode_workers``, JSON codec): the network thread only gathers a batch's payloads and,
  when it cuts the batch, sends them to a worker process (``ingest.sources.mqtt.decode_worker``) that decodes
  them
  and builds the Arrow batches on another core; batches are handed over in the order they were cut. Until a
  worker is ready, and when none is left (it died more often than ``decode_worker_restarts`` in 10 min),
  the thread decodes batches itself; a dead or hung worker's batches are decoded in the thread from the
  payloads kept until their result came back, so no message is lost or reordered (event kind "runtime").
- ``batch_id`` is a hash of the source name and the topics and payloads of the batch's messages (not their
  packet ids, which a redelivery changes), so a batch that is delivered again whole is recognised.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.core.component import Emit, Role
from edge.core.datamodel import event_row, events_batch
from edge.core.envelope import Envelope, join_acks
from edge.core.mqtt import HighRateClient, connect, make_client
from edge.core.settings import BrokerSettings
from ingest.codecs import Codec, CodecEvent, Command, Decoded
from ingest.codecs.json.codec import JsonCodec
from ingest.codecs.sparkplug.codec import NAMESPACE, SparkplugCodec, state_payload
from ingest.gate import QualityGate
from ingest.settings import MqttSourceSettings
from ingest.sources.mqtt.decode_worker import (
    DecodedBatch,
    DecodeWorker,
    WorkerDied,
    decode_batch,
    fingerprints,
    str_topics,
)

log = logging.getLogger("ingest.sources.mqtt")

_DONE = object()


def default_decode_workers(settings: MqttSourceSettings) -> int:
    """Worker processes a source decodes with: the setting, or (unset) 1 for the JSON codec on a host with
    two cores or more, else 0. The Sparkplug codec keeps per-node state (aliases, sequence numbers) and
    always decodes in the network thread."""
    if settings.codec != "json":
        return 0
    if settings.decode_workers is not None:
        return settings.decode_workers
    return 1 if (os.cpu_count() or 1) >= 2 else 0


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

    With ``codec`` given, decoding stays in the network thread (a codec object cannot be sent to a worker);
    otherwise ``default_decode_workers(settings)`` worker processes decode. ``decode_timeout_s``: a worker
    that has not answered a batch in that time is killed and counted as failed; ``decode_worker_restarts``:
    failed workers restarted within 10 minutes before the source decodes in its thread again.
    ``share_decoding``: when every worker already has ``SHARE_AT`` batches waiting, the network thread decodes
    the next batch itself instead of queueing it (it has time: paho alone keeps it about half busy at full
    rate), so both cores decode; the batches are still handed over in the order they were cut.
    """

    SHARE_AT = 2  # batches waiting at a worker (one being decoded, one queued) before the thread helps

    role: Role = "source"

    def __init__(self, settings: MqttSourceSettings, broker: BrokerSettings, emit: Emit, *,
                 batch_rows: int = 10_000, batch_ms: int = 50, codec: Codec | None = None,
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
        self.codec: Codec = codec if codec is not None else make_codec(settings)
        self.decode_workers = default_decode_workers(settings) if codec is None else 0
        self.decode_timeout_s = decode_timeout_s
        self.decode_worker_restarts = decode_worker_restarts
        self.share_decoding = share_decoding
        self._workers: list[DecodeWorker] = []
        self._restarts: deque[float] = deque()  # monotonic times of worker restarts
        self._inflight: deque[_Batch] = deque()  # cut, in order, waiting for their decoding
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
        self._cur = _Batch(self.name, self.batch_ms)
        self._completed: list[_Batch] = []  # batches cut by the journal, not yet handed over
        self._journal: _CutJournal | None = None
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

    # -- callbacks (network thread) ------------------------------------------------------------------------
    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        cur = self._cur
        journal = self._journal
        if journal is not None:
            if cur.target is not None and (not msg.dup or journal.lookup(_message_key(msg)) is not None):
                # A replayed cut ends early when the redelivery of its messages does: the rest were
                # acknowledged, so that batch was committed whole (acks go out last message first, so what
                # the broker delivers again is always the beginning of a cut; see ``_acker``).
                self._completed.append(cur)
                cur = self._cur = _Batch(self.name, self.batch_ms)
            if cur.n_msgs == 0:
                cur.first_key = _message_key(msg)
                if msg.dup:  # a redelivery: cut it where the batch that began with this message was cut
                    hit = journal.lookup(cur.first_key)
                    if hit is not None:
                        cur.target, cur.replay_id = hit
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
        high_rate = client if isinstance(client, HighRateClient) else None
        try:
            for i in range(self.decode_workers):
                self._spawn_worker(i)
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
                if self._inflight:  # results to collect soon
                    timeout = min(timeout, 0.002)
                if high_rate is not None and high_rate.buffered():
                    rc = self._loop_buffered(high_rate)
                else:
                    rc = client.loop(timeout=timeout)
                self._after_loop(hand_over)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    need_connect = True
                    self._stop_flag.wait(backoff)
                    backoff = min(backoff * 2, self.reconnect_max_s)
            # stopping: flush what we hold, then keep the connection serviced until the acks are sent
            self._after_loop(hand_over, force=True)
            give_up = time.monotonic() + min(self.decode_timeout_s, 5.0)
            while self._inflight:  # the batches the workers still decode
                if time.monotonic() > give_up:
                    for w in [w for w in self._workers if w.sent_at]:
                        self._worker_failed(w, "no result while stopping")
                self._collect(hand_over, wait_s=0.05)
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
            for w in self._workers:
                w.close()
            self._workers = []
            hand_over(_DONE)

    def _loop_buffered(self, client: HighRateClient) -> MQTTErrorCode:
        """One turn of paho's loop without its ``select``, which cannot see the bytes waiting in the client's
        read buffer: read the next packet from it, write what is queued (acks), keepalive twice a second."""
        rc = client.loop_read()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and client.want_write():
            rc = client.loop_write()
        now = time.monotonic()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and now >= self._next_misc:
            self._next_misc = now + 0.5
            rc = client.loop_misc()
        return rc

    def _after_loop(self, hand_over: Callable[[object], None], force: bool = False) -> None:
        if self.decode_workers:
            self._after_loop_pipelined(hand_over, force)
            return
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
        raw = list(zip(str_topics(topics), payloads, strict=True))
        cur.hash_messages(topics, payloads)
        self.counters["messages"] += len(raw)
        before = cur.rows()
        self.codec.decode(raw, recv_us, cur.decoded)
        rows = cur.rows() - before
        self._rows_per_msg = 0.8 * self._rows_per_msg + 0.2 * max(1.0, rows / len(raw))
        self._wake_at = int(min(5000, max(10, self.batch_rows / self._rows_per_msg)))
        self._publish_commands(cur.decoded.commands)
        cur.decoded.commands.clear()

    def _publish_commands(self, commands: list[Command]) -> None:
        client = self._client
        if commands and client is not None:
            for cmd in commands:
                client.publish(cmd.topic, cmd.payload, qos=cmd.qos, retain=cmd.retain)
                self.counters["commands_published"] += 1

    # -- decoding in worker processes (network thread) -------------------------------------------------------
    def _after_loop_pipelined(self, hand_over: Callable[[object], None], force: bool) -> None:
        """With decode workers: cut batches by payload bytes (rows learned per byte) or time, send each
        whole to a worker, and hand over the decoded ones in the order they were cut."""
        # (runs after every message: kept lean)
        while self._completed:
            self._submit(self._completed.pop(0), hand_over)
        cur = self._cur
        while self._events:
            cur.add_event(self._events.popleft())
        if cur.started:
            if cur.target is None:
                due = force or cur.n_bytes >= self._cut_bytes or time.monotonic() >= cur.deadline
            else:
                due = force or time.monotonic() >= cur.deadline + 10 * cur.batch_s
            if due:
                self._cur = _Batch(self.name, self.batch_ms)
                self._submit(cur, hand_over)
        if (self._inflight or self._unready) and (force or time.monotonic() >= self._next_poll):
            self._collect(hand_over, force=True)

    def _spawn_worker(self, index: int) -> DecodeWorker | None:
        try:
            w = DecodeWorker(self.settings.model_dump(mode="json"), index)
        except (OSError, WorkerDied) as exc:
            self.counters["decode_worker_failures"] += 1
            log.warning("decode worker could not start", extra={"source": self.name, "error": str(exc)})
            self._event("runtime", f"decode worker could not start: {exc}", {"error": str(exc)})
            return None
        self._workers.append(w)
        self._unready = sum(1 for w in self._workers if not w.ready)
        self.counters["decode_workers_started"] += 1
        return w

    def _submit(self, cur: _Batch, hand_over: Callable[[object], None]) -> None:
        """Send a cut batch to a worker (or decode it here when no worker is ready); keep it in order."""
        topics, payloads = cur.topics, cur.payloads
        cur.topics, cur.payloads = [], []
        recv_us = now_us = self._now_us()
        cur.seq = self._seq
        self._seq += 1
        ready = [w for w in self._workers if w.ready]
        self._inflight.append(cur)
        if not topics or not ready:
            cur.result = decode_batch(self.codec, self.name, topics, payloads, recv_us, now_us)
            if topics:
                self.counters["batches_decoded_in_thread"] += 1  # no worker (yet, or any more)
        elif self.share_decoding and min(len(w.sent_at) for w in ready) >= self.SHARE_AT:
            cur.result = decode_batch(self.codec, self.name, topics, payloads, recv_us, now_us)
            self.counters["batches_decoded_in_thread_workers_busy"] += 1
        else:
            w = min(ready, key=lambda w: len(w.sent_at))
            cur.chunk = (topics, payloads, recv_us, now_us)
            cur.worker = w
            try:
                w.send(cur.seq, recv_us, now_us, topics, payloads)
            except WorkerDied as exc:
                self._worker_failed(w, str(exc))
        # back-pressure: at most 4 batches a worker in flight (the network thread waits, the broker holds on)
        while len(self._inflight) > 4 * max(1, len(self._workers)):
            self._collect(hand_over, wait_s=0.05)

    def _collect(self, hand_over: Callable[[object], None], wait_s: float = 0.0, force: bool = False) -> None:
        """Take the workers' results (at most every millisecond unless waiting), hand over what is next."""
        now = time.monotonic()
        if wait_s == 0.0 and not force and now < self._next_poll:
            return
        self._next_poll = now + 0.001
        head = self._inflight[0].worker if self._inflight else None
        for w in list(self._workers):
            try:
                results = w.poll(wait_s if w is head else 0.0)
            except WorkerDied as exc:
                self._worker_failed(w, str(exc))
                continue
            for item in results:
                self._take_result(w, item)
            now = time.monotonic()
            if w.oldest_wait_s(now) > self.decode_timeout_s:
                self._worker_failed(w, f"no result in {self.decode_timeout_s:g} s")
            elif not w.ready and now - w.started > max(self.decode_timeout_s, 30.0):
                self._worker_failed(w, "did not start")
        self._unready = sum(1 for w in self._workers if not w.ready)
        while self._inflight and self._inflight[0].result is not None:
            hand_over(self._envelopes(self._inflight.popleft()))

    def _take_result(self, w: DecodeWorker, item: tuple[Any, ...]) -> None:
        seq = item[0]
        for b in self._inflight:
            if b.seq == seq and b.worker is w:
                break
        else:
            return  # a batch already decoded here after an earlier failure
        res = item[1]
        if res is None:  # the codec raised in the worker: decode here, where it raises as without workers
            log.warning("decode worker raised", extra={"source": self.name, "error": item[2]})
            topics, payloads, recv_us, now_us = b.chunk  # type: ignore[misc]
            res = decode_batch(self.codec, self.name, topics, payloads, recv_us, now_us)
        else:
            self.counters["batches_decoded_by_workers"] += 1
        b.result = res
        b.chunk = None
        b.worker = None

    def _worker_failed(self, w: DecodeWorker, why: str) -> None:
        """A worker died or hung: kill it, decode its batches here, restart it or go on without it."""
        code = w.kill()
        self._workers.remove(w)
        self._unready = sum(1 for w in self._workers if not w.ready)
        self.counters["decode_worker_failures"] += 1
        for b in self._inflight:
            if b.worker is w and b.result is None:
                topics, payloads, recv_us, now_us = b.chunk  # type: ignore[misc]
                b.result = decode_batch(self.codec, self.name, topics, payloads, recv_us, now_us)
                b.chunk = None
                b.worker = None
                self.counters["batches_decoded_after_worker_failure"] += 1
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > 600:
            self._restarts.popleft()
        detail: dict[str, Any] = {"pid": w.pid, "exit_code": code, "cause": why}
        if len(self._restarts) < self.decode_worker_restarts and not self._stop_flag.is_set():
            self._restarts.append(now)
            new = self._spawn_worker(w.index)
            what = "restarted" if new is not None else "decoding in the network thread"
            if new is not None:
                self.counters["decode_worker_restarts"] += 1
                detail["new_pid"] = new.pid
        else:
            what = "decoding in the network thread" if not self._workers else "going on with fewer workers"
        log.warning("decode worker failed", extra={"source": self.name, **detail})
        self._event("runtime", f"MQTT decode worker {w.pid} failed ({why}); {what}", detail)

    def _envelopes(self, cur: _Batch) -> list[Envelope]:
        d = cur.decoded
        now = self._now_us()
        envelopes: list[Envelope] = []
        dead_batches = []
        res = cur.result
        if res is None:  # decoded here, a chunk at a time
            samples = d.to_samples(now)
            if len(d.dead):
                for reason, count in d.dead.counters.items():
                    self.counters[f"dead_letter:{reason}"] += count
                dead_batches.append(d.dead.take_batch())
        else:  # decoded whole, by a worker or here
            cur.fold(res)
            self.counters["messages"] += res.n_msgs
            samples = res.samples
            if res.dead is not None:
                for reason, count in res.dead_counts.items():
                    self.counters[f"dead_letter:{reason}"] += count
                dead_batches.append(res.dead)
            d.events.extend(res.events)
            self._publish_commands(res.commands)
            if samples.num_rows and cur.n_bytes:
                self._bytes_per_row = 0.8 * self._bytes_per_row + 0.2 * (cur.n_bytes / samples.num_rows)
                self._cut_bytes = self.batch_rows * self._bytes_per_row
        batch_id = cur.batch_id()
        if self._journal is not None and cur.first_key is not None and cur.replay_id is None:
            self._journal.record(cur.first_key, cur.n_msgs, batch_id)  # before anything can be committed
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
                # last message first: if the process dies halfway, what the broker has not seen acknowledged
                # (and delivers again) is the beginning of the cut, which the cut journal knows by its key
                for mid in reversed(mids):
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
        self._inflight = deque()
        self._workers = []
        self._restarts = deque()
        self._unready = 0
        if self._journal_path is not None and self._journal is None:
            self._journal = _CutJournal(Path(self._journal_path))
        s = self.settings
        client, address, props = make_client(self.broker, client_id=self.client_id, clean_start=s.clean_start,
                                             url=s.url, username=s.username, password=s.password, tls=s.tls,
                                             high_rate=True)
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
        return self._ev_hash.hexdigest() + "-ev"


def _message_key(msg: MQTTMessage) -> str:
    h = hashlib.blake2b(msg._topic, digest_size=10)
    h.update(msg.payload)
    return h.hexdigest()


class _CutJournal:
    """Where this source cut its recent batches: key of the first message -> (number of messages, batch id).

    A batch's id is the hash of its messages. After a crash the broker delivers the unacknowledged messages
    again; cutting them where they were cut before, under the id recorded then, lets the historian's ledger
    recognise the batch that was committed but not (or only partly) acknowledged when the process died.
    Appended (not fsynced: it has to survive a process crash, not a power loss) and compacted to the last
    entries. Lines are ``key n id`` (``key n`` from older versions: the id is then the hash again).
    """

    KEEP = 4096

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.cuts: dict[str, tuple[int, str | None]] = {}
        if path.exists():
            for line in path.read_text(errors="replace").splitlines()[-self.KEEP:]:
                key, _, rest = line.partition(" ")
                n, _, batch_id = rest.partition(" ")
                if n.isdigit():
                    self.cuts[key] = (int(n), batch_id.strip() or None)
        self._lines = len(self.cuts)
        self._fh = path.open("a")

    def lookup(self, key: str) -> tuple[int, str | None] | None:
        return self.cuts.get(key)

    def record(self, key: str, n: int, batch_id: str) -> None:
        self.cuts[key] = (n, batch_id)
        self._fh.write(f"{key} {n} {batch_id}\n")
        self._fh.flush()
        self._lines += 1
        if self._lines > 2 * self.KEEP:
            keep = list(self.cuts.items())[-self.KEEP:]
            self.cuts = dict(keep)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(f"{k} {n} {i or ''}\n" for k, (n, i) in keep))
            self._fh.close()
            tmp.replace(self.path)
            self._fh = self.path.open("a")
            self._lines = len(keep)


def _events_batch(events: list[CodecEvent], source: str) -> pa.RecordBatch:
    return events_batch([event_row(e.kind, e.message, e.detail, source=source, ts=e.ts_us) for e in events])
