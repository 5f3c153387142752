"""Insights as a Sparkplug B edge node (optional), for SCADA and MES that speak Sparkplug.

One edge node (``group``/``node``); each equipment is a device whose id is the asset path with ``/`` replaced
by ``.`` (Sparkplug ids cannot hold ``/``). Per model a device carries the metrics ``<model>/score`` (Double),
``<model>/threshold`` (Double), ``<model>/severity`` (String), ``<model>/alarm`` (Boolean) and
``<model>/gated`` (Boolean), with aliases from the DBIRTH (unique across the node and stable for the life of
this object, rebirths included). A metric's timestamp is its insight's ``ts``; a payload's is the send time.

This class only builds messages (topic, payload, qos, retain) and keeps the node's state (the latest insight
per device and model); ``ingest.codecs.sparkplug.publisher`` sends them. By the specification: the NDEATH is
the
MQTT will of the connection, with the same ``bdSeq`` as the NBIRTH that follows the connect (``will(bdseq)``
before connecting, then ``births()``); each new connection gets a new bdSeq (0..255); ``seq`` runs 0..255 and
wraps, NBIRTH has seq 0; NBIRTH carries ``Node Control/Rebirth``; a device's DBIRTH (every metric with its
current value, null for a model not seen yet) goes out before its first DDATA, and again after any
(re)birth. NDEATH at QoS 1, births and data at QoS 0 (Sparkplug requires QoS 0 for them). The protobuf and
helpers are ingest's (``ingest.codecs.sparkplug.payload``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError

from ingest.codecs import Command
from ingest.codecs.sparkplug.payload import (
    BDSEQ_METRIC,
    NAMESPACE,
    REBIRTH_METRIC,
    DataType,
    make_payload,
    pb,
)

METRICS: tuple[tuple[str, int], ...] = (
    ("score", DataType.Double),
    ("threshold", DataType.Double),
    ("severity", DataType.String),
    ("alarm", DataType.Boolean),
    ("gated", DataType.Boolean),
)

# (name or None, alias or None, datatype, value, metric timestamp in ms)
_Metric = tuple[str | None, int | None, int, object, int]


def device_id(asset: str) -> str:
    return ".".join(p for p in asset.replace("+", "_").replace("#", "_").split("/") if p)


@dataclass
class _Latest:
    """The latest insight of one model on one device: its time (ms) and metric values by short name."""

    ts_ms: int
    values: dict[str, object]


def _row_ts_ms(row: dict[str, Any]) -> int:
    ts = row["ts"]
    if isinstance(ts, datetime):
        return int(ts.timestamp() * 1000)
    return int(ts) // 1000  # microseconds


def _values(row: dict[str, Any]) -> dict[str, object]:
    return {"score": row["score"], "threshold": row["threshold"], "severity": row["severity"],
            "alarm": row["severity"] == "alarm", "gated": bool(row["gated"])}


def _payload(metrics: list[_Metric], *, seq: int | None, timestamp_ms: int) -> bytes:
    """``make_payload`` with each metric's own timestamp (its insight's ``ts``)."""
    return make_payload([m[:4] for m in metrics], seq=seq, timestamp_ms=timestamp_ms,
                        metric_ts_ms=[m[4] for m in metrics])


def is_rebirth_request(payload: bytes) -> bool:
    """Whether an NCMD payload asks for a rebirth (``Node Control/Rebirth`` = true)."""
    try:
        p = pb.Payload.FromString(payload)
    except DecodeError:
        return False
    return any(m.name == REBIRTH_METRIC and m.WhichOneof("value") == "boolean_value" and m.boolean_value
               for m in p.metrics)


@dataclass
class SparkplugInsightsNode:
    group: str
    node: str
    bdseq: int = 0
    seq: int = 0
    _aliases: dict[str, dict[str, int]] = field(default_factory=dict)  # device -> metric name -> alias
    _next_alias: int = 1
    _born: dict[str, set[str]] = field(default_factory=dict)  # device -> models in its last DBIRTH
    _state: dict[str, dict[str, _Latest]] = field(default_factory=dict)  # device -> model -> latest
    _connected_once: bool = False

    # -- topics, sequence --------------------------------------------------------------------------------
    def topic(self, mtype: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{mtype}/{self.node}"
        return f"{base}/{device}" if device else base

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    @property
    def devices(self) -> list[str]:
        """The devices the node has state for (born again on every NBIRTH)."""
        return list(self._state)

    # -- session -----------------------------------------------------------------------------------------
    def will(self, bdseq: int | None = None) -> Command:
        """The NDEATH to set as the MQTT will before (re)connecting; starts a new bdSeq session.

        ``bdseq`` is the session's number when the caller keeps it (persisted across restarts); without it
        the node counts: 0 for the first connection, then one more for each.
        """
        if bdseq is not None:
            self.bdseq = bdseq % 256
        elif self._connected_once:
            self.bdseq = (self.bdseq + 1) % 256
        self._connected_once = True
        return self.ndeath()

    def ndeath(self, timestamp_ms: int | None = None) -> Command:
        """The NDEATH of the current session (the will's twin, published explicitly on a clean stop)."""
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        payload = _payload([(BDSEQ_METRIC, None, DataType.Int64, self.bdseq, ts)], seq=None, timestamp_ms=ts)
        return Command(self.topic("NDEATH"), payload, qos=1)

    def nbirth(self, timestamp_ms: int | None = None) -> Command:
        """NBIRTH (seq 0, the session's bdSeq, Node Control/Rebirth); all devices must be born again."""
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        self.seq = 0
        self._born.clear()
        payload = _payload(
            [
                (BDSEQ_METRIC, None, DataType.Int64, self.bdseq, ts),
                (REBIRTH_METRIC, None, DataType.Boolean, False, ts),
            ],
            seq=self._next_seq(),
            timestamp_ms=ts,
        )
        return Command(self.topic("NBIRTH"), payload, qos=0)

    def births(self, timestamp_ms: int | None = None) -> list[Command]:
        """NBIRTH, then a DBIRTH with the current values for every device the node has state for."""
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        out = [self.nbirth(ts)]
        for dev in self._state:
            out.append(self._dbirth(dev, set(self._state[dev]), ts))
        return out

    # -- state and data ----------------------------------------------------------------------------------
    def _latest(self, insights: pa.RecordBatch) -> dict[str, dict[str, _Latest]]:
        """The newest row per device and model of ``insights`` that is not older than the node's state."""
        out: dict[str, dict[str, _Latest]] = {}
        for row in insights.to_pylist():
            dev, model, ts = device_id(str(row["asset"])), str(row["model"]), _row_ts_ms(row)
            known = self._state.get(dev, {}).get(model)
            if known is not None and ts < known.ts_ms:
                continue  # an older insight committed late: the state does not go back
            have = out.setdefault(dev, {}).get(model)
            if have is None or ts >= have.ts_ms:
                out[dev][model] = _Latest(ts, _values(row))
        return {dev: models for dev, models in out.items() if models}

    def observe(self, insights: pa.RecordBatch) -> None:
        """Take ``insights`` into the state without sending anything (the births carry them)."""
        for dev, models in self._latest(insights).items():
            self._state.setdefault(dev, {}).update(models)

    def messages(self, insights: pa.RecordBatch, timestamp_ms: int | None = None) -> list[Command]:
        """DBIRTH for devices or models not yet born, then one DDATA per device with its latest values."""
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        out: list[Command] = []
        for dev, models in self._latest(insights).items():
            born = self._born.get(dev)
            if born is None or not set(models) <= born:
                out.append(self._dbirth(dev, set(self._state.get(dev, {})) | set(models), ts))
            self._state.setdefault(dev, {}).update(models)
            aliases = self._aliases[dev]
            data: list[_Metric] = []
            for model, latest in models.items():
                for name, dt in METRICS:
                    data.append((None, aliases[f"{model}/{name}"], dt, latest.values[name], latest.ts_ms))
            payload = _payload(data, seq=self._next_seq(), timestamp_ms=ts)
            out.append(Command(self.topic("DDATA", dev), payload, qos=0))
        return out

    def _dbirth(self, dev: str, models: set[str], ts: int) -> Command:
        """A device's DBIRTH: every metric of ``models`` with its alias and current value (null if none)."""
        aliases = self._aliases.setdefault(dev, {})
        state = self._state.get(dev, {})
        metrics: list[_Metric] = []
        for model in sorted(models):
            latest = state.get(model)
            for name, dt in METRICS:
                full = f"{model}/{name}"
                if full not in aliases:
                    aliases[full] = self._next_alias
                    self._next_alias += 1
                value = latest.values[name] if latest is not None else None
                metrics.append((full, aliases[full], dt, value, latest.ts_ms if latest is not None else ts))
        self._born[dev] = set(models)
        return Command(self.topic("DBIRTH", dev), _payload(metrics, seq=self._next_seq(), timestamp_ms=ts),
                       qos=0)
