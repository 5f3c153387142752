"""MES events: the canonical JSON shape, decoding (with a field mapping for MES systems that publish other
shapes), and what each event does to the context of its scope.

Canonical event (see ``mes_event.schema.json`` and the README of this folder)::

    {"type": "work_order_started", "ts": "2026-11-29T06:00:00Z", "scope": "acme/plant1/pack/line2",
     "event_id": "mes-8812", "work_order": "WO-1001", "product": "SKU-42", "batch": "B-7"}

``ts`` is when it happened in the plant (ISO 8601 with an offset), ``scope`` the ISA-95 path of the line or
equipment (or any level above: a shift change is often site or area wide) it applies to.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from contextualize.settings import MesFieldMap

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)

# Context keys joined onto samples, features and insights (columns of CONTEXTUALIZED_SAMPLES).
JOIN_KEYS: tuple[str, ...] = ("work_order", "product", "batch", "shift")
# Keys the store keeps but that are not columns of a sample batch.
STATE_KEY = "work_order_state"
ALL_KEYS: tuple[str, ...] = (*JOIN_KEYS, STATE_KEY)


class MesEventType(enum.StrEnum):
    WORK_ORDER_STARTED = "work_order_started"
    WORK_ORDER_HELD = "work_order_held"
    WORK_ORDER_RESUMED = "work_order_resumed"
    WORK_ORDER_COMPLETED = "work_order_completed"
    PRODUCT = "product"
    BATCH = "batch"
    SHIFT_CHANGE = "shift_change"
    CORRECTION = "correction"


# Aliases MES systems commonly use for our types (extended by MesFieldMap.type_values).
TYPE_ALIASES: dict[str, MesEventType] = {
    "lot": MesEventType.BATCH,
    "shift": MesEventType.SHIFT_CHANGE,
    "work_order_start": MesEventType.WORK_ORDER_STARTED,
    "work_order_hold": MesEventType.WORK_ORDER_HELD,
    "work_order_resume": MesEventType.WORK_ORDER_RESUMED,
    "work_order_complete": MesEventType.WORK_ORDER_COMPLETED,
}

REQUIRED: dict[MesEventType, tuple[str, ...]] = {
    MesEventType.WORK_ORDER_STARTED: ("work_order",),
    MesEventType.WORK_ORDER_HELD: (),
    MesEventType.WORK_ORDER_RESUMED: (),
    MesEventType.WORK_ORDER_COMPLETED: (),
    MesEventType.PRODUCT: ("product",),
    MesEventType.BATCH: ("batch",),
    MesEventType.SHIFT_CHANGE: ("shift",),
    MesEventType.CORRECTION: ("work_order",),
}


class MesEventError(ValueError):
    """A payload that is not a usable MES event. ``reason`` is a short stable code for dead letters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class MesEvent:
    type: MesEventType
    ts_us: int  # plant time, microseconds UTC
    scope: str  # ISA-95 path, no leading/trailing slash
    event_id: str
    work_order: str | None = None
    product: str | None = None
    batch: str | None = None
    shift: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ts(self) -> datetime:
        return us_to_dt(self.ts_us)

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form of this event."""
        out: dict[str, Any] = {
            "type": str(self.type),
            "ts": self.ts.isoformat().replace("+00:00", "Z"),
            "scope": self.scope,
            "event_id": self.event_id,
        }
        for k in JOIN_KEYS:
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out

    def content_hash(self) -> str:
        body = self.to_json()
        body.pop("event_id", None)
        return hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


def us_to_dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def dt_to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise MesEventError("bad_ts", f"{dt.isoformat()} has no UTC offset")
    return (dt - EPOCH) // US


def parse_ts(value: Any, fmt: str = "iso8601", *, assume_utc: bool = False) -> int:
    """Microseconds UTC from an ISO 8601 string (with offset) or epoch seconds/ms/us per ``fmt``."""
    if fmt == "iso8601" or (isinstance(value, str) and fmt == "auto"):
        if not isinstance(value, str):
            raise MesEventError("bad_ts", f"ts {value!r} is not an ISO 8601 string")
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise MesEventError("bad_ts", f"ts {value!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            if not assume_utc:
                raise MesEventError("bad_ts", f"ts {value!r} has no UTC offset")
            dt = dt.replace(tzinfo=UTC)
        return dt_to_us(dt)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MesEventError("bad_ts", f"ts {value!r} is not a number ({fmt})")
    scale = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1, "auto": 1_000_000}[fmt]
    return round(value * scale)


def normalize_scope(scope: str) -> str:
    parts = [p.strip() for p in scope.strip().strip("/").split("/")]
    if not parts or any(not p for p in parts):
        raise MesEventError("bad_scope", f"scope {scope!r} is not an ISA-95 path (enterprise/site/area/line)")
    return "/".join(parts)


def _get_path(doc: Any, path: str) -> Any:
    """Value at a dotted path (``a.b.0.c``); None when any step is missing. An empty path gives None."""
    if not path:
        return None
    cur = doc
    for step in path.split("."):
        if isinstance(cur, Mapping):
            cur = cur.get(step)
        elif isinstance(cur, list) and step.isdigit() and int(step) < len(cur):
            cur = cur[int(step)]
        else:
            return None
        if cur is None:
            return None
    return cur


def _as_str(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MesEventError("bad_field", f"{name} must be a string, got {type(value).__name__}")
    text = str(value).strip()
    return text or None


def decode_event(
    payload: bytes | str | Mapping[str, Any], mapping: MesFieldMap | None = None, *, assume_utc: bool = False
) -> MesEvent:
    """Decode one MES payload into a :class:`MesEvent`, or raise :class:`MesEventError` with a reason code.

    Without ``mapping`` the canonical field names are read; with one, each field is read at its configured
    dotted path, the MES's type names are translated by ``type_values``, and ``scope_prefix`` is put in front
    of the scope the MES sends.
    """
    m = mapping or MesFieldMap()
    if isinstance(payload, bytes | str):
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise MesEventError("bad_json", str(exc)) from None
    else:
        doc = payload
    if not isinstance(doc, Mapping):
        raise MesEventError("not_an_object", f"payload is a JSON {type(doc).__name__}, not an object")
    raw_type = _get_path(doc, m.type)
    if not isinstance(raw_type, str):
        raise MesEventError("missing_type", f"no event type at {m.type!r}")
    type_name = m.type_values.get(raw_type, raw_type).strip().lower()
    try:
        etype = TYPE_ALIASES.get(type_name) or MesEventType(type_name)
    except ValueError:
        raise MesEventError(
            "unknown_type",
            f"event type {raw_type!r} is not one of {', '.join(t.value for t in MesEventType)}",
        ) from None
    raw_ts = _get_path(doc, m.ts)
    if raw_ts is None:
        raise MesEventError("missing_ts", f"no ts at {m.ts!r}")
    ts_us = parse_ts(raw_ts, m.ts_format, assume_utc=assume_utc)
    raw_scope = _as_str("scope", _get_path(doc, m.scope))
    if raw_scope is None:
        raise MesEventError("missing_scope", f"no scope at {m.scope!r}")
    scope = normalize_scope(f"{m.scope_prefix.strip('/')}/{raw_scope}" if m.scope_prefix else raw_scope)
    values = {k: _as_str(k, _get_path(doc, getattr(m, k))) for k in JOIN_KEYS}
    if values["batch"] is None and m.lot:
        values["batch"] = _as_str("lot", _get_path(doc, m.lot))
    for k in REQUIRED[etype]:
        if values[k] is None:
            raise MesEventError("missing_field", f"{etype.value} needs {k} (at {getattr(m, k)!r})")
    if etype is MesEventType.CORRECTION and values["product"] is None and values["batch"] is None:
        raise MesEventError("missing_field", "correction needs product or batch (the corrected value)")
    event_id = _as_str("event_id", _get_path(doc, m.event_id))
    ev = MesEvent(
        etype,
        ts_us,
        scope,
        event_id or "",
        work_order=values["work_order"],
        product=values["product"],
        batch=values["batch"],
        shift=values["shift"],
    )
    if not event_id:  # deterministic from the content: a redelivery is the same event
        ev = dataclasses.replace(ev, event_id=f"h-{ev.content_hash()}")
    return ev
