"""Store-and-forward: an on-disk spool of envelopes, in Arrow IPC segments, bounded in bytes.

Layout: ``SpoolSettings.dir`` holds segments named ``{seq:016d}.arrow``. A segment is an Arrow IPC *stream*
whose schema metadata names the envelope kind (``fe.kind``) and whose every record batch carries its
``batch_id`` as custom metadata (``fe.batch_id``). A segment holds batches of one kind and one schema; a new
segment starts when the kind or schema changes or the segment passes ``segment_bytes``.

Durability: :meth:`Spool.append` returns only after the batch is written and ``fsync``-ed (and, for a new
segment, after the directory is ``fsync``-ed too), so a caller may acknowledge its source as soon as it
returns.

Bounded: the spool's bytes on disk never pass ``max_bytes``. When a batch does not fit, the policy
``when_full`` decides: ``refuse_new`` raises :class:`SpoolFull` (the caller applies backpressure), and
``drop_oldest`` deletes whole oldest segments until it fits. Either way an event of kind ``spool`` is
reported through ``on_event`` and a metric is counted.

Crash recovery: :meth:`Spool.open` finds the segments left by an earlier run. A torn segment (a crash in the
middle of a write) is rewritten with the batches that read back whole, and an event says how many bytes were
cut off; a segment with nothing readable is removed with an event. Nothing in the spool makes ``open`` fail.

Replay, in order: :meth:`Spool.oldest` seals the segment being written if it is the only one left and returns
the oldest segment; :meth:`Segment.read` gives its envelopes in the order they were appended; once all are
committed the caller calls :meth:`Spool.remove`. A crash in the middle of a replay replays the segment again;
the historian's ledger skips what was already committed.

Not thread-safe for concurrent callers beyond its own lock: every method takes the spool's lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.ipc as ipc

from edge.core.envelope import BatchKind, Envelope
from edge.core.metrics import METRICS, Metrics
from edge.core.settings import SpoolSettings

log = logging.getLogger("edge.sinks.historian.spool")

SUFFIX = ".arrow"
KIND_KEY = b"fe.kind"
ID_KEY = "fe.batch_id"
FRAME_OVERHEAD = 1024  # bytes an IPC message adds to a batch's buffers, at most, as a rough bound

SpoolEvent = Callable[[str, dict[str, Any]], None]  # (message, detail)


class SpoolFull(Exception):
    """The spool cannot take this batch under the ``refuse_new`` policy (or the batch alone is too big)."""


@dataclass(frozen=True)
class Segment:
    seq: int
    path: Path

    def read(self) -> list[Envelope]:
        """The envelopes of this segment, in order (the batches that read back whole)."""
        envelopes, _ = _read_segment(self.path)
        return envelopes


def _read_segment(path: Path) -> tuple[list[Envelope], str | None]:
    """The whole batches of a segment and, when the segment is torn, what went wrong."""
    envelopes: list[Envelope] = []
    try:
        with pa.OSFile(str(path), "rb") as fh:
            reader = ipc.open_stream(fh)
            meta = reader.schema.metadata or {}
            kind = cast(BatchKind, meta.get(KIND_KEY, b"samples").decode())
            while True:
                try:
                    batch, custom = reader.read_next_batch_with_custom_metadata()
                except StopIteration:
                    return envelopes, None
                batch_id = custom.get(ID_KEY) if custom is not None else None
                if batch_id is None:
                    return envelopes, "a batch without its batch id"
                envelopes.append(Envelope(kind, batch.replace_schema_metadata(None), batch_id.decode()))
    except (OSError, pa.ArrowInvalid, UnicodeDecodeError) as exc:
        return envelopes, f"{type(exc).__name__}: {exc}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _OpenSegment:
    def __init__(self, seq: int, path: Path, kind: str, schema: pa.Schema) -> None:
        self.seq = seq
        self.path = path
        self.kind = kind
        self.schema = schema
        self.file = pa.OSFile(str(path), "wb")
        self.writer = ipc.new_stream(self.file, schema.with_metadata({KIND_KEY: kind.encode()}))
        self.rows = 0

    def append(self, batch: pa.RecordBatch, batch_id: str) -> None:
        self.writer.write_batch(batch, custom_metadata={ID_KEY: batch_id})
        self.file.flush()
        os.fsync(self.file.fileno())
        self.rows += batch.num_rows

    def size(self) -> int:
        return int(self.file.tell())

    def close(self) -> None:
        # No end-of-stream marker is needed (a reader stops at end of file); closing the file is enough.
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


class Spool:
    """Durable, bounded, ordered store of envelopes waiting for the historian. See the module docstring."""

    def __init__(self, settings: SpoolSettings, *, metrics: Metrics | None = None,
                 on_event: SpoolEvent | None = None, stage: str = "spool") -> None:
        self.settings = settings
        self.dir = Path(settings.dir)
        self.metrics = metrics or METRICS
        self.on_event = on_event
        self.stage = stage
        self._lock = threading.RLock()
        self._sizes: dict[int, int] = {}  # seq -> bytes on disk, for every segment (the open one too)
        self._rows: dict[int, int] = {}
        self._kinds: dict[int, str] = {}
        self._current: _OpenSegment | None = None
        self._next_seq = 1
        self._opened = False
        self._refusing = False
        self._dropping: dict[str, int] | None = None

    # -- state -----------------------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    @property
    def rows(self) -> int:
        with self._lock:
            return sum(self._rows.values())

    @property
    def segment_count(self) -> int:
        with self._lock:
            return len(self._sizes)

    def empty(self) -> bool:
        with self._lock:
            return not self._sizes

    def _gauges(self) -> None:
        self.metrics.set_gauge("spool_bytes", self.bytes, stage=self.stage)
        self.metrics.set_gauge("spool_rows", self.rows, stage=self.stage)
        self.metrics.set_gauge("spool_segments", self.segment_count, stage=self.stage)

    def _event(self, message: str, **detail: Any) -> None:
        log.warning(message, extra={"spool": str(self.dir), **detail})
        if self.on_event is not None:
            try:
                self.on_event(message, {"spool": str(self.dir), **detail})
            except Exception:
                log.exception("spool event hook failed")

    # -- lifecycle -------------------------------------------------------------------------------------

    def open(self) -> Spool:
        """Find the segments of an earlier run, repair torn ones, and get ready to append after them."""
        with self._lock:
            if self._opened:
                return self
            self.dir.mkdir(parents=True, exist_ok=True)
            for tmp in self.dir.glob("*.tmp"):
                tmp.unlink(missing_ok=True)
            found = sorted(self._list())
            for seq, path in found:
                envelopes, problem = _read_segment(path)
                size = path.stat().st_size
                if envelopes:
                    self._kinds[seq] = envelopes[0].kind
                if problem is None and envelopes:
                    self._sizes[seq] = size
                    self._rows[seq] = sum(e.num_rows for e in envelopes)
                elif not envelopes:
                    path.unlink(missing_ok=True)
                    if problem is not None or size > 0:
                        self._event("spool segment unreadable; removed", segment=path.name, bytes=size,
                                    error=problem or "no batches")
                        self.metrics.inc(self.stage, "torn_segments")
                else:
                    self._rewrite(seq, path, envelopes)
                    self._event("spool segment torn by a crash; truncated to its whole batches",
                                segment=path.name, kept_batches=len(envelopes),
                                cut_bytes=size - self._sizes[seq], error=problem)
                    self.metrics.inc(self.stage, "torn_segments")
            self._next_seq = (max((s for s, _ in found), default=0)) + 1
            _fsync_dir(self.dir)
            self._opened = True
            self._gauges()
            if self._sizes:
                log.info("spool holds data from an earlier run",
                         extra={"segments": self.segment_count, "rows": self.rows})
            return self

    def close(self) -> None:
        """Seal the segment being written. The spool may be opened again."""
        with self._lock:
            self._seal()
            self._opened = False

    def _list(self) -> list[tuple[int, Path]]:
        out = []
        for p in self.dir.glob(f"*{SUFFIX}"):
            try:
                out.append((int(p.stem), p))
            except ValueError:
                continue
        return out

    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:016d}{SUFFIX}"

    def _rewrite(self, seq: int, path: Path, envelopes: list[Envelope]) -> None:
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as fh:
            writer = ipc.new_stream(fh, envelopes[0].batch.schema.with_metadata(
                {KIND_KEY: envelopes[0].kind.encode()}))
            for env in envelopes:
                writer.write_batch(env.batch, custom_metadata={ID_KEY: env.batch_id})
            writer.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.dir)
        self._sizes[seq] = path.stat().st_size
        self._rows[seq] = sum(e.num_rows for e in envelopes)

    def _seal(self) -> None:
        if self._current is not None:
            cur, self._current = self._current, None
            cur.close()
            self._sizes[cur.seq] = cur.path.stat().st_size

    # -- append ----------------------------------------------------------------------------------------

    def append(self, envelope: Envelope) -> None:
        """Store one envelope durably. Raises :class:`SpoolFull` when the policy refuses it."""
        with self._lock:
            if not self._opened:
                self.open()
            batch = envelope.batch
            need = int(batch.get_total_buffer_size()) + FRAME_OVERHEAD
            self._make_room(need, envelope)
            cur = self._current
            schema = batch.schema
            if cur is not None and (cur.kind != envelope.kind or not cur.schema.equals(schema)
                                    or cur.size() >= self.settings.segment_bytes):
                self._seal()
                cur = None
            if cur is None:
                seq = self._next_seq
                self._next_seq += 1
                cur = _OpenSegment(seq, self._path(seq), envelope.kind, schema)
                self._current = cur
                self._rows[seq] = 0
                self._kinds[seq] = envelope.kind
                _fsync_dir(self.dir)
            try:
                cur.append(batch, envelope.batch_id)
            except Exception:
                # The segment may now end in a partial message: seal it; open() would cut it off.
                self._seal()
                raise
            self._sizes[cur.seq] = cur.size()
            self._rows[cur.seq] += batch.num_rows
            if self._refusing:
                self._refusing = False
                self._event("spool takes data again", policy=self.settings.when_full)
            self.metrics.inc(self.stage, "spooled", batch.num_rows)
            self._gauges()

    def _make_room(self, need: int, envelope: Envelope) -> None:
        limit = self.settings.max_bytes
        used = self.bytes
        if used + need <= limit:
            return
        if need > limit:
            self.metrics.inc(self.stage, "rejected", envelope.num_rows, reason="batch_too_big")
            self._event("batch larger than the whole spool; refused", batch_id=envelope.batch_id,
                        bytes=need, max_bytes=limit)
            raise SpoolFull(f"batch of {need} bytes does not fit a spool of {limit} bytes")
        if self.settings.when_full == "refuse_new":
            if not self._refusing:  # one event per episode, not one per retry
                self._refusing = True
                self.metrics.inc(self.stage, "full", 1, reason="refuse_new")
                self._event("spool full; refusing new data (sources are held back)", policy="refuse_new",
                            bytes=used, max_bytes=limit, batch_id=envelope.batch_id)
            raise SpoolFull(f"spool full ({used} of {limit} bytes)")
        while used + need > limit and self._sizes:
            oldest = min(self._sizes)
            if self._current is not None and self._current.seq == oldest:
                self._seal()
            rows = self._rows.get(oldest, 0)
            size = self._sizes.get(oldest, 0)
            kind = self._kinds.get(oldest, "samples")
            self._drop(oldest)
            used = self.bytes
            if kind == "events":  # our own event rows, counted apart from the data
                self.metrics.inc(self.stage, "dropped_events", rows, reason="spool_full")
            else:
                self.metrics.inc(self.stage, "dropped", rows, reason="spool_full")
            log.info("spool full: dropped a segment", extra={"segment": oldest, "kind": kind, "rows": rows})
            if self._dropping is None:  # one event when an episode starts, one with its totals at its end
                self._dropping = {"dropped_rows": 0, "dropped_segments": 0, "dropped_bytes": 0}
                self.metrics.inc(self.stage, "full", 1, reason="drop_oldest")
                self._event("spool full; dropping the oldest segments", policy="drop_oldest",
                            segment=self._path(oldest).name, kind=kind, rows=rows, bytes=size,
                            max_bytes=limit)
            if kind != "events":
                self._dropping["dropped_rows"] += rows
            self._dropping["dropped_segments"] += 1
            self._dropping["dropped_bytes"] += size

    def _drop(self, seq: int) -> None:
        self._path(seq).unlink(missing_ok=True)
        self._sizes.pop(seq, None)
        self._rows.pop(seq, None)
        self._kinds.pop(seq, None)
        _fsync_dir(self.dir)

    # -- replay ----------------------------------------------------------------------------------------

    def oldest(self) -> Segment | None:
        """The oldest segment, ready to read (sealed first if it is the one being written)."""
        with self._lock:
            if not self._sizes:
                return None
            seq = min(self._sizes)
            if self._current is not None and self._current.seq == seq:
                self._seal()
            return Segment(seq, self._path(seq))

    def remove(self, segment: Segment) -> None:
        """Forget a segment whose every batch is now in the historian."""
        with self._lock:
            if segment.seq in self._sizes:
                if self._current is not None and self._current.seq == segment.seq:
                    self._seal()
                self._drop(segment.seq)
                self._gauges()
            if self._dropping is not None:  # the spool drains again: the dropping episode is over
                episode, self._dropping = self._dropping, None
                self._event("spool no longer dropping data", policy="drop_oldest", **episode)

    def contains(self, segment: Segment) -> bool:
        with self._lock:
            return segment.seq in self._sizes
