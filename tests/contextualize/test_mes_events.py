"""Decoding MES events: the canonical shape, the schema's examples, a mapped shape, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from contextualize.mes_events import MesEventError, MesEventType, decode_event, dt_to_us
from contextualize.settings import MesFieldMap, MesSettings
from tests.fixtures.mes import LINE, at

SCHEMA = Path(__file__).resolve().parents[2] / "contextualize" / "mes_event.schema.json"


def test_schema_examples_decode() -> None:
    schema = json.loads(SCHEMA.read_text())
    types = set(schema["properties"]["type"]["enum"])
    assert {t.value for t in MesEventType} <= types
    for example in schema["examples"]:
        ev = decode_event(orjson.dumps(example))
        assert ev.scope == example["scope"]
        assert ev.event_id  # given or content hash


def test_canonical_event() -> None:
    ev = decode_event(orjson.dumps({"type": "work_order_started", "ts": "2026-03-02T07:00:00+01:00",
                                    "scope": f"/{LINE}/", "work_order": "WO-1", "lot": "L-9"}))
    assert ev.type is MesEventType.WORK_ORDER_STARTED
    assert ev.ts_us == dt_to_us(at(0))
    assert (ev.scope, ev.work_order, ev.batch) == (LINE, "WO-1", "L-9")
    same = decode_event(orjson.dumps({"type": "work_order_started", "ts": "2026-03-02T06:00:00Z",
                                      "scope": LINE, "work_order": "WO-1", "batch": "L-9"}))
    assert same.event_id == ev.event_id  # redelivery in another spelling is the same event


def test_mapped_shape() -> None:
    mapping = MesFieldMap.model_validate({
        "type": "header.eventType", "ts": "header.timestamp", "ts_format": "epoch_ms", "scope": "body.line",
        "scope_prefix": "acme/plant1/packaging", "event_id": "header.id", "work_order": "body.order",
        "product": "body.material", "batch": "body.lot", "type_values": {"OrderStart": "work_order_started"},
    })
    doc = {"header": {"eventType": "OrderStart", "timestamp": dt_to_us(at(0)) // 1000, "id": 77},
           "body": {"line": "line2", "order": "4711", "material": "SKU-1", "lot": "L1"}}
    ev = decode_event(orjson.dumps(doc), mapping)
    assert (ev.type, ev.scope, ev.event_id) == (MesEventType.WORK_ORDER_STARTED, LINE, "77")
    assert (ev.work_order, ev.product, ev.batch, ev.ts_us) == ("4711", "SKU-1", "L1", dt_to_us(at(0)))
    assert MesSettings.model_validate({"mapping": mapping.model_dump()}).mapping == mapping


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{oops", "bad_json"),
    (b"[1, 2]", "not_an_object"),
    (b'{"ts": "2026-03-02T06:00:00Z", "scope": "a/b"}', "missing_type"),
    (b'{"type": "explode", "ts": "2026-03-02T06:00:00Z", "scope": "a/b"}', "unknown_type"),
    (b'{"type": "batch", "scope": "a/b", "batch": "x"}', "missing_ts"),
    (b'{"type": "batch", "ts": "2026-03-02T06:00:00", "scope": "a/b", "batch": "x"}', "bad_ts"),
    (b'{"type": "batch", "ts": "yesterday", "scope": "a/b", "batch": "x"}', "bad_ts"),
    (b'{"type": "batch", "ts": "2026-03-02T06:00:00Z", "batch": "x"}', "missing_scope"),
    (b'{"type": "batch", "ts": "2026-03-02T06:00:00Z", "scope": "a//b", "batch": "x"}', "bad_scope"),
    (b'{"type": "batch", "ts": "2026-03-02T06:00:00Z", "scope": "a/b"}', "missing_field"),
    (b'{"type": "batch", "ts": "2026-03-02T06:00:00Z", "scope": "a/b", "batch": {"n": 1}}', "bad_field"),
    (b'{"type": "correction", "ts": "2026-03-02T06:00:00Z", "scope": "a/b", "work_order": "w"}',
     "missing_field"),
])
def test_refused_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(MesEventError) as info:
        decode_event(payload)
    assert info.value.reason == reason
