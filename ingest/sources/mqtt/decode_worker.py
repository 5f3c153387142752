"""Decoding MQTT payloads in a worker process, so that a second core does the codec's work.

The MQTT source's network thread runs paho and, without a worker, the codec too (for the JSON codec about as
much CPU again, plus the Arrow batch). With ``decode_workers`` set, the network thread only gathers a batch's
payloads and, when it cuts the batch, sends them to a worker process
(``python -m ingest.sources.mqtt.decode_worker``); the worker decodes them with its own codec, builds the
SAMPLES and DEAD_LETTERS Arrow batches and the batch-id fingerprints, and sends them back. The source hands
batches over in the order it cut them, whatever worker decoded them, and acknowledges them only after they
were emitted and acknowledged downstream, exactly as without a worker.

Protocol: two pipes (1 MiB each where the kernel allows), frames of an 8-byte little-endian length and a
body. Source -> worker: first the settings (``MqttSourceSettings.model_dump()``, pickled), then one frame per
batch: ``seq, recv_us, now_us, n`` (``_REQUEST``), the n topic lengths and n payload lengths (uint32), the
topics, the payloads. The payloads go into the pipe straight from the source's bytes objects (``os.writev``),
with no copy in between (pickling them would cost the network thread time per message). Worker -> source
(pickles): ``("ready",)`` once its imports are done, then ``(seq, DecodedBatch)`` per batch, or
``(seq, None, traceback)`` if decoding raised (the source then decodes that batch itself, so a codec bug
behaves as it does without a worker).

The worker is stateless between batches, so when it dies (or hangs) the source decodes the batches it had
in flight itself, from the payloads it kept, and gets the same rows; see ``workers``. The
worker ends when its request pipe closes (the source stopped or died) and, on Linux, is killed when the
thread that started it exits (``PR_SET_PDEATHSIG``), so it never outlives the source. It ignores SIGINT (a
Ctrl-C in a terminal reaches the whole process group): the source decides when it stops.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
import zlib
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ingest.codecs import Codec, CodecEvent, Command, Decoded

if TYPE_CHECKING:  # the worker process does not load pydantic and the settings
    from ingest.settings import MqttSourceSettings

_LEN = struct.Struct("<Q")
_REQUEST = struct.Struct("<qqqI")  # seq, recv_us, now_us, number of messages
_IOV_MAX = 512  # buffers per writev (Linux allows 1024)
assert array("I").itemsize == 4, "the request lengths are uint32"
PIPE_SIZE = 1 << 20  # bytes; Linux's default pipe-max-size for unprivileged processes
READY = ("ready",)


def default_decode_workers(settings: MqttSourceSettings) -> int:
    """Worker processes a source decodes with: the setting, or (unset) 1 for the JSON codec on a host with
    two cores or more, else 0. The Sparkplug codec keeps per-node state (aliases, sequence numbers) and
    always decodes in the network thread."""
    if settings.codec != "json":
        return 0
    if settings.decode_workers is not None:
        return settings.decode_workers
    return 1 if (os.cpu_count() or 1) >= 2 else 0


class WorkerDied(Exception):
    """The worker process ended, closed its pipe, or could not be written to."""


def fingerprints(topics: Sequence[bytes], payloads: Sequence[bytes]) -> bytes:
    """One fixed-size record per message (CRC-32 and Adler-32 of the payload, its length, CRC-32 of the
    topic) for the batch id, which so does not depend on how a batch was chunked for decoding (and is cheaper
    than hashing whole payloads with blake2b)."""
    n = len(payloads)
    rec = np.empty((n, 4), dtype=np.uint32)
    rec[:, 0] = np.fromiter(map(zlib.crc32, payloads), dtype=np.uint32, count=n)
    rec[:, 1] = np.fromiter(map(zlib.adler32, payloads), dtype=np.uint32, count=n)
    rec[:, 2] = np.fromiter(map(len, payloads), dtype=np.uint32, count=n)
    rec[:, 3] = np.fromiter(map(zlib.crc32, topics), dtype=np.uint32, count=n)
    return rec.tobytes()


@dataclass
class DecodedBatch:
    """What decoding one batch's messages gives, ready for the source's envelopes."""

    n_msgs: int
    fingerprints: bytes
    samples: pa.RecordBatch
    dead: pa.RecordBatch | None
    dead_counts: dict[str, int]
    events: list[CodecEvent]
    commands: list[Command]


def str_topics(topics: Sequence[bytes]) -> list[str]:
    try:
        return [t.decode() for t in topics]
    except UnicodeDecodeError:
        return [t.decode("utf-8", "replace") for t in topics]


def decode_batch(codec: Codec, source: str, topics: Sequence[bytes], payloads: Sequence[bytes],
                 recv_us: int, now_us: int) -> DecodedBatch:
    """Decode one batch's messages (in the worker, or in the source's thread when there is no worker)."""
    d = Decoded(source)
    if topics:
        codec.decode(list(zip(str_topics(topics), payloads, strict=True)), recv_us, d)
    dead = d.dead.take_batch() if len(d.dead) else None
    return DecodedBatch(len(topics), fingerprints(topics, payloads) if topics else b"", d.to_samples(now_us),
                        dead, dict(d.dead.counters), list(d.events), list(d.commands))


class DecodeWorker:
    """The source's handle on one worker process. Non-blocking on the source's side: ``send`` queues a
    frame and writes what the pipe takes, ``poll`` writes more and reads whatever results have arrived."""

    def __init__(self, settings: dict[str, Any], index: int = 0) -> None:
        self.index = index
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
        for fd in (req_w, res_w):
            if set_size is not None:
                with contextlib.suppress(OSError):  # above pipe-max-size: the default 64 kB works too
                    fcntl.fcntl(fd, set_size, PIPE_SIZE)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingest.sources.mqtt.decode_worker", str(req_r), str(res_w),
                str(os.getpid())],
                pass_fds=(req_r, res_w), stdin=subprocess.DEVNULL,
            )
        except BaseException:
            for fd in (req_r, req_w, res_r, res_w):
                os.close(fd)
            raise
        os.close(req_r)
        os.close(res_w)
        os.set_blocking(req_w, False)
        os.set_blocking(res_r, False)
        self._w: int | None = req_w
        self._r: int | None = res_r
        self._out: deque[memoryview] = deque()
        self._in = bytearray()
        self.ready = False
        self.started = time.monotonic()
        self.sent_at: deque[tuple[int, float]] = deque()  # (seq, monotonic time sent), oldest first
        self._queue(pickle.dumps(settings, protocol=5))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _queue(self, body: bytes) -> None:
        self._out.append(memoryview(_LEN.pack(len(body))))
        self._out.append(memoryview(body))
        self.flush()

    def send(self, seq: int, recv_us: int, now_us: int, topics: list[bytes], payloads: list[bytes]) -> None:
        self.sent_at.append((seq, time.monotonic()))
        head, payload_bytes = encode_request_head(seq, recv_us, now_us, topics, payloads)
        size = len(head) + payload_bytes
        out = self._out
        out.append(memoryview(_LEN.pack(size)))
        out.append(memoryview(head))
        out.extend(map(memoryview, payloads))
        self.flush()

    def flush(self) -> None:
        """Write what the pipe takes now."""
        out = self._out
        while out:
            if self._w is None:
                raise WorkerDied("request pipe closed")
            try:
                n = os.writev(self._w, list(itertools.islice(out, _IOV_MAX)))
            except BlockingIOError:
                return
            except OSError as exc:  # EPIPE: the worker is gone
                raise WorkerDied(f"writing to the worker: {exc}") from exc
            while n:
                first = out[0]
                if len(first) <= n:
                    n -= len(first)
                    out.popleft()
                else:
                    out[0] = first[n:]
                    n = 0

    def poll(self, timeout: float = 0.0) -> list[tuple[Any, ...]]:
        """Results that have arrived (waiting up to ``timeout`` s for the first). Raises WorkerDied."""
        if self._r is None:
            raise WorkerDied("result pipe closed")
        if timeout > 0:
            wl = [self._w] if self._out and self._w is not None else []
            readable, writable, _ = select.select([self._r], wl, [], timeout)
            if writable:
                self.flush()
            if not readable:
                return []
        elif self._out:
            self.flush()
        while True:
            try:
                chunk = os.read(self._r, PIPE_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                raise WorkerDied(f"reading from the worker: {exc}") from exc
            if not chunk:
                code = self.proc.poll()
                raise WorkerDied(f"the worker closed its pipe (exit code {code})")
            self._in += chunk
            if len(chunk) < PIPE_SIZE:
                break
        results: list[tuple[Any, ...]] = []
        buf = self._in
        pos = 0
        while len(buf) - pos >= _LEN.size:
            (n,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - _LEN.size < n:
                break
            with memoryview(buf) as mv:
                item = pickle.loads(mv[pos + _LEN.size:pos + _LEN.size + n])
            pos += _LEN.size + n
            if item == READY:
                self.ready = True
                continue
            results.append(item)
            if self.sent_at and self.sent_at[0][0] == item[0]:
                self.sent_at.popleft()
        if pos:
            del buf[:pos]
        return results

    def oldest_wait_s(self, now: float) -> float:
        """How long the oldest batch sent has been waiting for its result."""
        return now - self.sent_at[0][1] if self.sent_at else 0.0

    def close(self, timeout: float = 2.0) -> int | None:
        """Close the request pipe (the worker exits after the batch at hand), wait, kill if it does not."""
        if self._w is not None:
            os.close(self._w)
            self._w = None
        code: int | None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = self.kill()
        self._close_read()
        return code

    def kill(self) -> int | None:
        """Kill the worker now and reap it. Returns its exit code (negative: the signal)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        if self._w is not None:
            os.close(self._w)
            self._w = None
        self._close_read()
        return code

    def _close_read(self) -> None:
        if self._r is not None:
            os.close(self._r)
            self._r = None


def encode_request_head(seq: int, recv_us: int, now_us: int, topics: Sequence[bytes],
                        payloads: Sequence[bytes]) -> tuple[bytes, int]:
    """A batch request up to its payloads, which follow it as they are; and the payloads' bytes in all."""
    payload_lens = array("I", map(len, payloads))
    head = b"".join((_REQUEST.pack(seq, recv_us, now_us, len(payloads)),
                     array("I", map(len, topics)).tobytes(), payload_lens.tobytes(), *topics))
    return head, sum(payload_lens)


def decode_request(body: memoryview) -> tuple[int, int, int, list[bytes], list[bytes]]:
    """``(seq, recv_us, now_us, topics, payloads)`` of a batch request (the whole frame body)."""
    seq, recv_us, now_us, n = _REQUEST.unpack_from(body)
    lens = array("I")
    lens.frombytes(body[_REQUEST.size:_REQUEST.size + 8 * n])
    pos = _REQUEST.size + 8 * n
    parts: list[bytes] = []
    for k in lens:
        parts.append(bytes(body[pos:pos + k]))
        pos += k
    if pos != len(body):
        raise ValueError(f"request of {len(body)} bytes, {pos} described")
    return seq, recv_us, now_us, parts[:n], parts[n:]


# -- the worker process --------------------------------------------------------------------------------------
class _FrameReader:
    """Reads length-prefixed frames into one buffer that grows to the largest frame and is reused."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray(1 << 16)

    def _read_exact(self, n: int) -> memoryview | None:
        if len(self._buf) < n:
            self._buf = bytearray(n)
        view = memoryview(self._buf)[:n]
        got = 0
        while got < n:
            k = os.readv(self.fd, [view[got:]])
            if k == 0:
                return None
            got += k
        return view

    def frame(self) -> memoryview | None:
        """The next frame's body (valid until the next call), or None at end of file (the parent is gone)."""
        head = self._read_exact(_LEN.size)
        return None if head is None else self._read_exact(_LEN.unpack(head)[0])


def _write_all(fd: int, *parts: bytes) -> None:
    for part in parts:
        view = memoryview(part)
        while view:
            k = os.write(fd, view)
            view = view[k:]


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    req_fd, res_fd, parent_pid = int(argv[1]), int(argv[2]), int(argv[3])
    _die_with_parent(parent_pid)
    from types import SimpleNamespace

    from ingest.codecs.json.codec import JsonCodec  # (not pydantic and the settings: a faster start)

    frames = _FrameReader(req_fd)
    body = frames.frame()
    if body is None:
        return 0
    settings = SimpleNamespace(**pickle.loads(body))
    codec = JsonCodec.from_settings(settings)
    ready = pickle.dumps(READY, protocol=5)
    _write_all(res_fd, _LEN.pack(len(ready)), ready)
    while True:
        body = frames.frame()
        if body is None:
            return 0
        seq, recv_us, now_us, topics, payloads = decode_request(body)
        body.release()
        try:
            res = decode_batch(codec, settings.name, topics, payloads, recv_us, now_us)
            out: tuple[Any, ...] = (seq, res)
        except Exception:  # a codec bug: the source decodes this batch itself and sees the error there
            out = (seq, None, traceback.format_exc())
        data = pickle.dumps(out, protocol=5)
        try:
            _write_all(res_fd, _LEN.pack(len(data)), data)
        except BrokenPipeError:
            return 0


if __name__ == "__main__":
    # run the module's own copy (not __main__'s), so that results pickle as
    # ingest.sources.mqtt.decode_worker.*
    from ingest.sources.mqtt.decode_worker import main as _main

    raise SystemExit(_main(sys.argv))
