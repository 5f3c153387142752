"""A fast decoder for the one message that carries the data: PublishResponse with DataChangeNotifications.

asyncua decodes every notification into DataValue, Variant and datetime objects, which costs more per value
than anything else on the data path. This decoder reads the same bytes with precompiled ``struct`` formats
into plain column lists (handle, value, status, source and server time in µs), without an object per value,
and returns a real ``ua.PublishResponse`` whose
``NotificationData`` holds a :class:`DataChangeColumns` in place of each ``DataChangeNotification``.

Anything it does not expect (arrays, strings, events, status changes, diagnostic infos) makes it return None,
and the caller decodes the response with asyncua as usual: it never guesses.
"""

from __future__ import annotations

import struct
from typing import Any

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import nodeid_from_binary, struct_from_binary

DATA_CHANGE_ENCODING = 811  # DataChangeNotification_Encoding_DefaultBinary
PUBLISH_RESPONSE_ENCODING = 829
_EPOCH_DIFF_100NS = 116_444_736_000_000_000  # 1601-01-01 to 1970-01-01 in 100 ns ticks

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_HANDLE_MASK = struct.Struct("<IB")
# variant type id -> (struct, size)
_SCALARS: dict[int, tuple[struct.Struct, int]] = {
    1: (struct.Struct("<?"), 1),  # Boolean
    2: (struct.Struct("<b"), 1),  # SByte
    3: (struct.Struct("<B"), 1),  # Byte
    4: (struct.Struct("<h"), 2),  # Int16
    5: (struct.Struct("<H"), 2),  # UInt16
    6: (struct.Struct("<i"), 4),  # Int32
    7: (struct.Struct("<I"), 4),  # UInt32
    8: (struct.Struct("<q"), 8),  # Int64
    9: (struct.Struct("<Q"), 8),  # UInt64
    10: (struct.Struct("<f"), 4),  # Float
    11: (struct.Struct("<d"), 8),  # Double
}


class DataChangeColumns:
    """The monitored items of one DataChangeNotification, column by column. Times are UTC µs, 0 = absent."""

    __slots__ = ("handles", "server_us", "source_us", "status", "values")

    def __init__(self) -> None:
        self.handles: list[int] = []
        self.values: list[float] = []
        self.status: list[int] = []
        self.source_us: list[int] = []
        self.server_us: list[int] = []

    def __len__(self) -> int:
        return len(self.handles)


def _ticks_to_us(ticks: int) -> int:
    return (ticks - _EPOCH_DIFF_100NS) // 10 if ticks > 0 else 0


def decode_data_change(raw: bytes, pos: int, end: int) -> DataChangeColumns | None:
    """Decode a DataChangeNotification body ``raw[pos:end]``; None if it holds anything unexpected."""
    out = DataChangeColumns()
    h_a, v_a, s_a, src_a, srv_a = (out.handles.append, out.values.append, out.status.append,
                                   out.source_us.append, out.server_us.append)
    (count,) = _I32.unpack_from(raw, pos)
    pos += 4
    hm, u32, i64, scalars = _HANDLE_MASK.unpack_from, _U32.unpack_from, _I64.unpack_from, _SCALARS
    epoch = _EPOCH_DIFF_100NS
    nan = float("nan")
    for _ in range(max(count, 0)):
        handle, mask = hm(raw, pos)
        pos += 5
        value = nan
        if mask & 1:
            vt = raw[pos]
            pos += 1
            if vt:
                fmt = scalars.get(vt)
                if fmt is None:  # arrays, strings, structures: not this decoder's business
                    return None
                value = float(fmt[0].unpack_from(raw, pos)[0])
                pos += fmt[1]
        status = 0
        if mask & 2:
            (status,) = u32(raw, pos)
            pos += 4
        src = 0
        if mask & 4:
            (t,) = i64(raw, pos)
            pos += 8
            src = (t - epoch) // 10 if t > 0 else 0
        srv = 0
        if mask & 8:
            (t,) = i64(raw, pos)
            pos += 8
            srv = (t - epoch) // 10 if t > 0 else 0
        if mask & 0x10:
            pos += 2
        if mask & 0x20:
            pos += 2
        if mask & 0xC0:
            return None
        h_a(handle)
        v_a(value)
        s_a(status)
        src_a(src)
        srv_a(srv)
    (diag,) = _I32.unpack_from(raw, pos)
    pos += 4
    if diag > 0 or pos != end:
        return None
    return out


def decode_publish_response(data: Buffer) -> Any:
    """A ``ua.PublishResponse`` with :class:`DataChangeColumns` as its notification data, or None."""
    raw = bytes(data)
    try:
        buf = Buffer(raw)
        typeid = nodeid_from_binary(buf)
        if typeid.Identifier != PUBLISH_RESPONSE_ENCODING or typeid.NamespaceIndex != 0:
            return None
        header = struct_from_binary(ua.ResponseHeader, buf)
        pos = len(raw) - len(buf)
        (sub_id,) = _U32.unpack_from(raw, pos)
        pos += 4
        (n,) = _I32.unpack_from(raw, pos)
        pos += 4
        available = list(struct.unpack_from(f"<{max(n, 0)}I", raw, pos))
        pos += 4 * max(n, 0)
        more = bool(raw[pos])
        pos += 1
        (seq,) = _U32.unpack_from(raw, pos)
        pos += 4
        (publish_time,) = _I64.unpack_from(raw, pos)
        pos += 8
        (n_notif,) = _I32.unpack_from(raw, pos)
        pos += 4
        notifications: list[Any] = []
        for _ in range(max(n_notif, 0)):
            buf = Buffer(raw, pos)
            enc = nodeid_from_binary(buf)
            pos = len(raw) - len(buf)
            if enc.NamespaceIndex != 0 or enc.Identifier != DATA_CHANGE_ENCODING or raw[pos] != 1:
                return None  # status change, events: leave them to asyncua
            (length,) = _I32.unpack_from(raw, pos + 1)
            start = pos + 5
            cols = decode_data_change(raw, start, start + length)
            if cols is None:
                return None
            notifications.append(cols)
            pos = start + length
        (n_results,) = _I32.unpack_from(raw, pos)
        pos += 4
        results = [ua.StatusCode(v) for v in struct.unpack_from(f"<{max(n_results, 0)}I", raw, pos)]  # type: ignore[arg-type]
        pos += 4 * max(n_results, 0)
        (n_diag,) = _I32.unpack_from(raw, pos)
        if n_diag > 0:
            return None
    except (struct.error, IndexError, ValueError, ua.uaerrors.UaError):  # type: ignore[attr-defined]
        return None
    from datetime import UTC, datetime, timedelta

    response = ua.PublishResponse()
    response.ResponseHeader = header
    params = response.Parameters
    params.SubscriptionId = sub_id
    params.AvailableSequenceNumbers = available
    params.MoreNotifications = more
    params.NotificationMessage = ua.NotificationMessage(  # type: ignore[call-arg]
        SequenceNumber=seq,
        PublishTime=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=_ticks_to_us(publish_time)),
        NotificationData=notifications,
    )
    params.Results = results
    return response


def install(session: Any) -> None:
    """Make ``session`` (an asyncua UaSession) decode publish responses with this module, falling back to
    asyncua for anything else."""

    async def publish(acks: list[ua.SubscriptionAcknowledgement]) -> Any:
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        data = await session._send_request(request, timeout=0)
        fast = decode_publish_response(data)
        if fast is not None:
            return fast
        return struct_from_binary(ua.PublishResponse, data)

    session.publish = publish
