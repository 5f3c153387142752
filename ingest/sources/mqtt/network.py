"""The network thread: paho's callbacks and loop, reconnects with backoff, and the batching (decoding a
chunk at a time through the codec, or through the decode workers); finished envelopes are handed to the
event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.core.mqtt import HighRateClient
from ingest.sources.mqtt.batch import Batch
from ingest.sources.mqtt.decode_worker import str_topics
from ingest.sources.mqtt.host_state import announce_offline, announce_online
from ingest.sources.mqtt.journal import message_key
from ingest.sources.mqtt.workers import WorkerDecoding

log = logging.getLogger("ingest.sources.mqtt")

DONE = object()


class NetworkThread(WorkerDecoding):
    """paho's callbacks (in the network thread) and the thread's loop."""

    # -- callbacks (network thread) ------------------------------------------------------------------------
    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        cur = self._cur
        journal = self._journal
        if journal is not None:
            if cur.target is not None and (not msg.dup or journal.lookup(message_key(msg)) is not None):
                # A replayed cut ends early when the redelivery of its messages does: the rest were
                # acknowledged, so that batch was committed whole (acks go out last message first, so what
                # the broker delivers again is always the beginning of a cut; see ``_acker``).
                self._completed.append(cur)
                cur = self._cur = Batch(self.name, self.batch_ms)
            if cur.n_msgs == 0:
                cur.first_key = message_key(msg)
                hit = journal.lookup(cur.first_key) if msg.dup else None
                if hit is not None and hit[0] > 0:
                    # a redelivery: cut it where the batch that began with this message was cut
                    cur.target, cur.replay_id = hit
                    self.counters["cuts_replayed"] += 1
                else:
                    journal.begin(cur.first_key)
        cur.add_message(msg, self._generation)
        if cur.target is not None and cur.n_msgs >= cur.target:
            self._completed.append(cur)
            self._cur = Batch(self.name, self.batch_ms)

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
            announce_online(client, host_id, self._state_ts_ms)
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
                announce_offline(client, host_id, self._state_ts_ms)
            client.disconnect()
            for _ in range(5):
                if client.loop(timeout=0.01) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        finally:
            for w in self._workers:
                w.close()
            self._workers = []
            hand_over(DONE)

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
            self._cur = Batch(self.name, self.batch_ms)
            hand_over(self._envelopes(cur))

    def _decode(self, cur: Batch) -> None:
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
