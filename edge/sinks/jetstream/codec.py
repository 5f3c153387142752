"""Subjects, stream names and the wire form of a batch: one Arrow IPC stream per envelope.

Subjects (``<site>``, ``<line>``, ``<box>`` are single NATS tokens)::

    fe.<site>.data.<line>.<box>.<kind>      kind: samples | insights | events | features | dead_letters
    fe.<site>.fleet.heartbeat.<box>         a box's heartbeat (JSON)

Streams: ``FE_<SITE>`` holds ``fe.<site>.data.>`` (limits retention, R3 by default); ``FE_<SITE>_FLEET``
holds ``fe.<site>.fleet.>`` with one message per subject (the last heartbeat of every box).

A message: headers ``Nats-Msg-Id`` (the site-wide batch id ``<box>.<batch_id>``, what the stream's
de-duplication window and the central ledger recognise), ``Fe-Kind``, ``Fe-Box``; payload an Arrow IPC stream
(schema with metadata ``fe.kind``, ``fe.batch_id``, ``fe.box``, then the one record batch). Compressed, the
whole stream is one LZ4 frame or ZSTD frame behind a 12-byte prefix: the magic ``FEL4`` or ``FEZS`` and the
stream's length (uint64, little-endian). One frame for the whole payload, not Arrow's per-buffer IPC
compression: that cost about four times the CPU for a larger payload. :func:`decode` also reads plain IPC
streams with per-buffer compressed buffers (what earlier boxes sent).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import cast

import pyarrow as pa
import pyarrow.ipc as ipc

from edge.core.envelope import BatchKind, Envelope

MSG_ID = "Nats-Msg-Id"
KIND_HEADER = "Fe-Kind"
BOX_HEADER = "Fe-Box"
_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def token(name: str) -> str:
    """A name as one NATS subject token (dots, spaces and wildcards become ``_``)."""
    return _TOKEN.sub("_", name) or "_"


def data_subject(site: str, line: str, box: str, kind: str) -> str:
    return f"fe.{token(site)}.data.{token(line)}.{token(box)}.{kind}"


def data_wildcard(site: str) -> str:
    return f"fe.{token(site)}.data.>"


def insights_wildcard(site: str) -> str:
    """Every box's insights at a site: what MES subscribes to."""
    return f"fe.{token(site)}.data.*.*.insights"


def heartbeat_subject(site: str, box: str) -> str:
    return f"fe.{token(site)}.fleet.heartbeat.{token(box)}"


def heartbeat_wildcard(site: str) -> str:
    return f"fe.{token(site)}.fleet.heartbeat.*"


def data_stream(site: str) -> str:
    return f"FE_{token(site).upper()}"


def fleet_stream(site: str) -> str:
    return f"FE_{token(site).upper()}_FLEET"


def site_batch_id(box: str, batch_id: str) -> str:
    """The id of a box's batch across the site: batch ids are unique per box, not between boxes."""
    return f"{box}.{batch_id}"


_MAGIC = {"lz4": b"FEL4", "zstd": b"FEZS"}
_CODEC_OF = {magic: name for name, magic in _MAGIC.items()}
_PREFIX = struct.Struct("<4sQ")
_PLAIN = ipc.IpcWriteOptions(compression=None)


def encode(envelope: Envelope, box: str, *, compression: str = "none") -> tuple[bytes, dict[str, str]]:
    """The payload and headers of one envelope."""
    msg_id = site_batch_id(box, envelope.batch_id)
    batch = envelope.batch
    schema = batch.schema.with_metadata({"fe.kind": envelope.kind, "fe.batch_id": msg_id, "fe.box": box})
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema, options=_PLAIN) as writer:
        writer.write_batch(batch)
    stream = sink.getvalue()
    headers = {MSG_ID: msg_id, KIND_HEADER: envelope.kind, BOX_HEADER: box}
    if compression == "none":
        return stream.to_pybytes(), headers
    packed = pa.compress(stream, codec=compression, asbytes=True)
    return _PREFIX.pack(_MAGIC[compression], stream.size) + packed, headers


def _unpack(payload: bytes) -> pa.Buffer:
    codec = _CODEC_OF.get(bytes(payload[:4]))
    if codec is None:
        return pa.py_buffer(payload)
    try:
        _, size = _PREFIX.unpack_from(payload)
        return pa.decompress(memoryview(payload)[_PREFIX.size:], decompressed_size=size, codec=codec)
    except (OSError, ValueError, struct.error) as exc:
        raise ValueError(f"a {codec} payload that does not decompress ({len(payload)} bytes): {exc}") from exc


@dataclass(frozen=True)
class Decoded:
    envelope: Envelope  # batch_id: the site-wide id
    box: str


def decode(payload: bytes) -> Decoded:
    """An envelope back from its payload (the metadata travels in the schema; headers are not needed)."""
    reader = ipc.open_stream(_unpack(payload))
    meta = reader.schema.metadata or {}
    batches = list(reader)
    if len(batches) == 1:
        batch = batches[0]
    else:
        table = pa.Table.from_batches(batches, schema=reader.schema).combine_chunks()
        batch = (table.to_batches() or [pa.RecordBatch.from_pylist([], schema=reader.schema)])[0]
    kind = cast(BatchKind, meta.get(b"fe.kind", b"samples").decode())
    batch_id = meta.get(b"fe.batch_id", b"").decode()
    if not batch_id:
        raise ValueError("a batch without fe.batch_id")
    return Decoded(Envelope(kind, batch.replace_schema_metadata(None), batch_id),
                   meta.get(b"fe.box", b"").decode())
