"""Decoding in worker processes (``decode_workers``), run by the network thread: batches cut by payload
bytes, sent whole to a worker, handed over in the order they were cut; a dead or hung worker's batches
decoded in the thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ingest.sources.mqtt.acks import Acknowledgements
from ingest.sources.mqtt.batch import Batch
from ingest.sources.mqtt.decode_worker import DecodeWorker, WorkerDied, decode_batch

log = logging.getLogger("ingest.sources.mqtt")


class WorkerDecoding(Acknowledgements):
    """The pipelined path of the network thread, with decode workers."""

    SHARE_AT = 2  # batches waiting at a worker (one being decoded, one queued) before the thread helps

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
                self._cur = Batch(self.name, self.batch_ms)
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

    def _submit(self, cur: Batch, hand_over: Callable[[object], None]) -> None:
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
