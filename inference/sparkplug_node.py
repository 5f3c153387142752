"""Insights as a Sparkplug B edge node (optional), for SCADA and MES that speak Sparkplug.

One edge node (``group``/``node``); each equipment is a device whose id is the asset path with ``/`` replaced
by ``.`` (Sparkplug ids cannot hold ``/``). Per model a device carries the metrics ``<model>/score`` (Double),
``<model>/threshold`` (Double), ``<model>/severity`` (String), ``<model>/alarm`` (Boolean) and
``<model>/gated`` (Boolean), with aliases from the DBIRTH.

This class only builds messages (topic, payload, qos, retain); the MQTT publisher sends them. By the
specification: the NDEATH is the MQTT will of the connection, with the same ``bdSeq`` as the NBIRTH that
follows the connect (``will()`` before connecting, then ``nbirth()``); each new connection increments bdSeq
(0..255); ``seq`` runs 0..255 and wraps, NBIRTH has seq 0; NBIRTH carries ``Node Control/Rebirth``; a
device's DBIRTH goes out before its first DDATA, and again after a rebirth. NDEATH at QoS 1, births and data
at QoS 0 (Sparkplug requires QoS 0 for them). The protobuf and helpers are ingest's
(``ingest.codecs.sparkplug``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow as pa

from ingest.codecs import Command
from ingest.codecs.sparkplug import BDSEQ_METRIC, NAMESPACE, REBIRTH_METRIC, DataType, make_payload

METRICS: tuple[tuple[str, int], ...] = (
    ("score", DataType.Double),
    ("threshold", DataType.Double),
    ("severity", DataType.String),
    ("alarm", DataType.Boolean),
    ("gated", DataType.Boolean),
)
_METRIC_TYPE = dict(METRICS)


def device_id(asset: str) -> str:
    return ".".join(p for p in asset.replace("+", "_").replace("#", "_").split("/") if p)


@dataclass
class SparkplugInsightsNode:
    group: str
    node: str
    bdseq: int = 0
    seq: int = 0
    _devices: dict[str, dict[str, int]] = field(default_factory=dict)  # device -> metric name -> alias
    _next_alias: int = 1
    _connected_once: bool = False

    def _topic(self, mtype: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{mtype}/{self.node}"
        return f"{base}/{device}" if device else base

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    def will(self) -> Command:
        """The NDEATH to set as the MQTT will before (re)connecting; starts a new bdSeq session."""
        if self._connected_once:
            self.bdseq = (self.bdseq + 1) % 256
        self._connected_once = True
        payload = make_payload([(BDSEQ_METRIC, None, DataType.Int64, self.bdseq)], seq=None)
        return Command(self._topic("NDEATH"), payload, qos=1)

    def nbirth(self, timestamp_ms: int | None = None) -> Command:
        """NBIRTH (seq 0, the session's bdSeq, Node Control/Rebirth); all devices must be born again."""
        self.seq = 0
        self._devices.clear()
        self._next_alias = 1
        payload = make_payload(
            [
                (BDSEQ_METRIC, None, DataType.Int64, self.bdseq),
                (REBIRTH_METRIC, None, DataType.Boolean, False),
            ],
            seq=self._next_seq(),
            timestamp_ms=timestamp_ms,
        )
        return Command(self._topic("NBIRTH"), payload, qos=0)

    def messages(self, insights: pa.RecordBatch, timestamp_ms: int | None = None) -> list[Command]:
        """DBIRTH for devices or models not yet born, then one DDATA per device with its latest values."""
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        latest: dict[tuple[str, str], dict[str, object]] = {}
        for row in insights.to_pylist():
            latest[(device_id(str(row["asset"])), str(row["model"]))] = row
        out: list[Command] = []
        by_device: dict[str, list[tuple[str, dict[str, object]]]] = {}
        for (dev, model), row in latest.items():
            by_device.setdefault(dev, []).append((model, row))
        for dev, items in by_device.items():
            aliases = self._devices.get(dev)
            missing = [m for m, _ in items if aliases is None or f"{m}/score" not in aliases]
            if aliases is None or missing:
                aliases = dict(aliases or {})
                for m in missing:
                    for name, _dt in METRICS:
                        aliases[f"{m}/{name}"] = self._next_alias
                        self._next_alias += 1
                self._devices[dev] = aliases
                birth = []
                for full, alias in aliases.items():
                    dt = _METRIC_TYPE[full.rsplit("/", 1)[1]]
                    birth.append((full, alias, dt, _default(dt)))
                out.append(
                    Command(
                        self._topic("DBIRTH", dev),
                        make_payload(birth, seq=self._next_seq(), timestamp_ms=ts),
                        qos=0,
                    )
                )
            data = []
            for model, row in items:
                score = row["score"]
                values: dict[str, object] = {
                    "score": score,
                    "threshold": row["threshold"],
                    "severity": row["severity"],
                    "alarm": row["severity"] == "alarm",
                    "gated": bool(row["gated"]),
                }
                for name, dt in METRICS:
                    data.append((None, aliases[f"{model}/{name}"], dt, values[name]))
            out.append(
                Command(
                    self._topic("DDATA", dev),
                    make_payload(data, seq=self._next_seq(), timestamp_ms=ts),
                    qos=0,
                )
            )
        return out


def _default(dt: int) -> object:
    return {DataType.Double: 0.0, DataType.String: "ok", DataType.Boolean: False}.get(DataType(dt))
