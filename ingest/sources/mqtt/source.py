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
  two busy threads, which cost much of the throughput when paho ran in one thread and the decoding in
  another (``network``).
- Decode workers (``decode_workers``, JSON codec): the network thread only gathers a batch's payloads and,
  when it cuts the batch, sends them to a worker process (``ingest.sources.mqtt.decode_worker``) that decodes
  them and builds the Arrow batches on another core (``workers``); batches are handed over in the order
  they were cut. Until a worker is ready, and when none is left (it died more often than
  ``decode_worker_restarts`` in 10 min), the thread decodes batches itself; a dead or hung worker's
  batches are decoded in the thread from the payloads kept until their result came back, so no message is
  lost or reordered (event kind "runtime").
- ``batch_id`` is a hash of the source name and the topics and payloads of the batch's messages (not their
  packet ids, which a redelivery changes), so a batch that is delivered again whole is recognised; the cut
  journal (``journal``) makes a redelivery after a crash cut where it was cut before.

The component is layered by job: ``state`` (what it holds), ``batch`` (one batch being gathered), ``acks``
(envelopes and their PUBACKs), ``workers``, ``network`` (paho's callbacks and loop), ``host_state``
(Sparkplug host STATE) and this module (the component's event-loop side).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from pathlib import Path

from edge.core.component import Role
from edge.core.mqtt import connect, make_client
from ingest.sources.mqtt.batch import Batch
from ingest.sources.mqtt.host_state import set_offline_will
from ingest.sources.mqtt.journal import CutJournal
from ingest.sources.mqtt.network import DONE, NetworkThread


class MqttSource(NetworkThread):
    """A supervisor component (role "source") that subscribes to ``settings.topics`` and emits Envelopes.

    ``emit`` receives "samples" envelopes (SAMPLES), "dead_letters" (what the codec, or ``gate`` if given,
    rejected) and "events" (connection, Sparkplug births/deaths/gaps). ``counters`` counts messages,
    samples, acknowledgements, reconnects and every dead-letter reason.

    ``codec`` is the one the settings name (the caller builds it: ``edge.app.plugins.make_codec``); it decodes
    in the network thread. ``default_decode_workers(settings)`` worker processes (JSON codec only) build the
    same codec from the settings and decode batches there. ``decode_timeout_s``: a worker that has not
    answered a batch in that time is killed and counted as failed; ``decode_worker_restarts``: failed workers
    restarted within 10 minutes before the source decodes in its thread again.
    ``share_decoding``: when every worker already has ``SHARE_AT`` batches waiting, the network thread decodes
    the next batch itself instead of queueing it (it has time: paho alone leaves it idle part of the time at
    full rate), so both cores decode; the batches are still handed over in the order they were cut.
    """

    role: Role = "source"

    # -- the event loop side --------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        self._stop_flag.clear()
        self._abandoned.clear()
        self._handoff = queue.Queue(maxsize=self._handoff.maxsize)
        self._cur = Batch(self.name, self.batch_ms)
        self._completed = []
        self._inflight = deque()
        self._workers = []
        self._restarts = deque()
        self._unready = 0
        if self._journal_path is not None and self._journal is None:
            self._journal = CutJournal(Path(self._journal_path))
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
            set_offline_will(client, s.sparkplug_host_id, self._state_ts_ms)
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
                    if item is DONE:
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
