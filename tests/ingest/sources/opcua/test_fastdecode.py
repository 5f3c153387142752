"""The fast PublishResponse decoder agrees with asyncua's own decoding, and declines what it does not know."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from ingest.sources.opcua.fastdecode import DataChangeColumns, decode_publish_response

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
U: Any = ua  # asyncua's stubs are narrower than what it accepts


def _response(items: list[Any], extra: list[Any] | None = None) -> Buffer:
    resp = U.PublishResponse()
    resp.Parameters.SubscriptionId = 7
    resp.Parameters.AvailableSequenceNumbers = [3, 4]
    resp.Parameters.NotificationMessage = U.NotificationMessage(
        SequenceNumber=4, PublishTime=NOW, NotificationData=[U.DataChangeNotification(MonitoredItems=items),
                                                             *(extra or [])])
    resp.Parameters.Results = [U.StatusCode(0)]
    return Buffer(struct_to_binary(resp))


def _item(handle: int, variant: Any, status: int | None = None, src: datetime | None = NOW,
          srv: datetime | None = None) -> Any:
    dv = U.DataValue(variant, StatusCode=U.StatusCode(status) if status is not None else None,
                     SourceTimestamp=src, ServerTimestamp=srv)
    return U.MonitoredItemNotification(ClientHandle=handle, Value=dv)


def test_scalars_statuses_and_timestamps_match_asyncua() -> None:
    vt = U.VariantType
    items = [
        _item(1, U.Variant(1.25, vt.Double)),
        _item(2, U.Variant(2.5, vt.Float), srv=NOW + timedelta(seconds=1)),
        _item(3, U.Variant(-7, vt.Int32), status=0x40000000),  # uncertain
        _item(4, U.Variant(True, vt.Boolean), src=None, srv=NOW),
        _item(5, U.Variant(None, vt.Null), status=0x80890000, src=None),  # BadSensorFailure, no value
        _item(6, U.Variant(2**40, vt.Int64)),
        _item(7, U.Variant(65000, vt.UInt16)),
    ]
    data = _response(items)
    reference = struct_from_binary(U.PublishResponse, data.copy())
    fast = decode_publish_response(data)
    assert fast is not None
    assert fast.Parameters.SubscriptionId == 7
    assert fast.Parameters.AvailableSequenceNumbers == [3, 4]
    assert fast.Parameters.NotificationMessage.SequenceNumber == 4
    ref_message = reference.Parameters.NotificationMessage
    assert fast.Parameters.NotificationMessage.PublishTime == ref_message.PublishTime
    [cols] = fast.Parameters.NotificationMessage.NotificationData
    assert isinstance(cols, DataChangeColumns)
    ref_items = reference.Parameters.NotificationMessage.NotificationData[0].MonitoredItems

    def us(dt: datetime | None) -> int:
        return 0 if dt is None else (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

    for i, ref in enumerate(ref_items):
        assert cols.handles[i] == ref.ClientHandle
        v = ref.Value.Value.Value if ref.Value.Value is not None else None
        if v is None:
            assert math.isnan(cols.values[i])
        else:
            assert cols.values[i] == float(v)
        assert cols.status[i] == (ref.Value.StatusCode.value if ref.Value.StatusCode is not None else 0)
        assert cols.source_us[i] == us(ref.Value.SourceTimestamp)
        assert cols.server_us[i] == us(ref.Value.ServerTimestamp)


def test_declines_strings_arrays_and_other_notifications() -> None:
    vt = U.VariantType
    assert decode_publish_response(_response([_item(1, U.Variant("text", vt.String))])) is None
    assert decode_publish_response(_response([_item(1, U.Variant([1.0, 2.0], vt.Double))])) is None
    status = U.StatusChangeNotification(Status=U.StatusCode(0x80AB0000))
    assert decode_publish_response(_response([_item(1, U.Variant(1.0, vt.Double))], [status])) is None
    # a keep-alive (no notifications) decodes to an empty message
    empty = decode_publish_response(_response([]))
    assert empty is not None and len(empty.Parameters.NotificationMessage.NotificationData[0]) == 0
