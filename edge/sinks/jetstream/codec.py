"""Subjects, stream names and the wire form of a batch: one Arrow IPC stream per envelope.

Subjects (``<site>``, ``<line>``, ``<box>`` are single NATS tokens)::

    fe.<site>.data.<line>.<box>.<kind>      kind: samples | insights | events | features | dead_letters
    fe.<site>.fleet.heartbeat.<box>         a box's heartbeat (JSON)

Streams: ``FE_<SITE>`` holds ``fe.<site>.data.>`` (limits retention, R3 by default); ``FE_<SITE>_FLEET``
holds ``fe.<site>.fleet.>`` with one message per subject (the last heartbeat of every box).

A message: headers ``Nats-Msg-Id`` (the site-wide batch id ``<box>.<batch_id>``, what the stream's
de-duplication window and the central ledger recognise), ``Fe-Kind``, ``Fe-Box``; payload an Arrow IPC stream
(schema with metadata ``fe.kind``, ``fe.batch_id``, ``fe.box``, then the one record batch), optionally
LZ4/ZSTD-compressed buffers.
"""

from __future__ import annotations

import re
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


def encode(envelope: Envelope, box: str, *, compression: str = "none") -> tuple[bytes, dict[str, str]]:
    """The payload and headers of one envelope."""
    msg_id = site_batch_id(box, envelope.batch_id)
    batch = envelope.batch
    schema = batch.schema.with_metadata({"fe.kind": envelope.kind, "fe.batch_id": msg_id, "fe.box": box})
    options = ipc.IpcWriteOptions(compression=None if compression == "none" else compression)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema, options=options) as writer:
        writer.write_batch(batch)
    headers = {MSG_ID: msg_id, KIND_HEADER: envelope.kind, BOX_HEADER: box}
    return sink.getvalue().to_pybytes(), headers


@dataclass(frozen=True)
class Decoded:
    envelope: Envelope  # batch_id: the site-wide id
    box: str


def decode(payload: bytes) -> Decoded:
    """An envelope back from its payload (the metadata travels in the schema; headers are not needed)."""
    reader = ipc.open_stream(pa.py_buffer(payload))
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
