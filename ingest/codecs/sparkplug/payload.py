"""Sparkplug B payloads: the namespace, metric data types, metric values both ways, and the payloads a host
application sends (a rebirth request, its STATE)."""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from typing import Any

import orjson

from ingest.codecs import Command
from ingest.codecs.sparkplug import sparkplug_b_pb2

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
BDSEQ_METRIC = "bdSeq"
pb: Any = sparkplug_b_pb2  # generated; typed as Any


class DataType(enum.IntEnum):
    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14


_SIGNED_BITS = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.Int64: 64}
_NUMERIC_FIELDS = ("int_value", "long_value", "float_value", "double_value", "boolean_value")


def metric_value(m: Any, datatype: int) -> float | None:
    """A metric's value as float, or None when it is not numeric. Signed ints are two's complement."""
    kind = m.WhichOneof("value")
    if kind is None or kind not in _NUMERIC_FIELDS:
        return None
    v = getattr(m, kind)
    if kind == "int_value" and datatype in _SIGNED_BITS:
        bits = _SIGNED_BITS[DataType(datatype)]
        if v >= 1 << 31:  # sign-extended to 32 bits (Sparkplug 3.0)
            v -= 1 << 32
        elif bits < 32 and v >= 1 << (bits - 1):  # written in its own width
            v -= 1 << bits
    elif kind == "long_value" and datatype == DataType.Int64 and v >= 1 << 63:
        v -= 1 << 64
    return float(v)


def make_payload(metrics: Sequence[tuple[str | None, int | None, int, Any]], *, seq: int | None,
                 timestamp_ms: int | None = None, historical: bool = False,
                 metric_ts_ms: Sequence[int] | None = None) -> bytes:
    """A Sparkplug B payload: metrics are (name or None, alias or None, datatype, value), each timestamped
    with the payload's time or, given ``metric_ts_ms``, with its own."""
    p = pb.Payload()
    p.timestamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    if seq is not None:
        p.seq = seq
    for i, (name, alias, datatype, value) in enumerate(metrics):
        m = p.metrics.add()
        if name is not None:
            m.name = name
        if alias is not None:
            m.alias = alias
        m.datatype = int(datatype)
        m.timestamp = p.timestamp if metric_ts_ms is None else metric_ts_ms[i]
        if historical:
            m.is_historical = True
        set_metric_value(m, int(datatype), value)
    return bytes(p.SerializeToString())


def set_metric_value(m: Any, datatype: int, value: Any) -> None:
    if value is None:
        m.is_null = True
    elif datatype == DataType.Boolean:
        m.boolean_value = bool(value)
    elif datatype == DataType.Float:
        m.float_value = float(value)
    elif datatype == DataType.Double:
        m.double_value = float(value)
    elif datatype in (DataType.Int64, DataType.UInt64, DataType.DateTime):
        m.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    elif datatype in (DataType.Int8, DataType.Int16, DataType.Int32, DataType.UInt8, DataType.UInt16,
                      DataType.UInt32):
        m.int_value = int(value) & 0xFFFFFFFF
    else:
        m.string_value = str(value)


def rebirth_command(group: str, node: str) -> Command:
    """NCMD ``Node Control/Rebirth`` = true for an edge node (QoS 0, as the specification says)."""
    payload = make_payload([(REBIRTH_METRIC, None, DataType.Boolean, True)], seq=None)
    return Command(f"{NAMESPACE}/{group}/NCMD/{node}", payload, qos=0)


def state_payload(online: bool, timestamp_ms: int) -> bytes:
    """The host application's STATE payload (Sparkplug 3.0: JSON, published retained at QoS 1)."""
    return orjson.dumps({"online": online, "timestamp": timestamp_ms})


def bdseq_of(p: Any) -> int | None:
    """The bdSeq metric of an NBIRTH/NDEATH payload (the last one, if repeated); None if absent or null."""
    bdseq = None
    for m in p.metrics:
        if m.name == BDSEQ_METRIC:
            v = metric_value(m, m.datatype or DataType.Int64)
            bdseq = int(v) if v is not None else None
    return bdseq
