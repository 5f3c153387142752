"""Sparkplug B (spBv1.0) as a host application: births, aliases, data, deaths, sequence numbers, STATE.

Topics: ``spBv1.0/<group>/<NBIRTH|NDEATH|NDATA|NCMD|DBIRTH|DDEATH|DDATA|DCMD>/<edge node>[/<device>]`` and
``spBv1.0/STATE/<host id>``. Per edge node the codec keeps:

- the alias tables of the NBIRTH (node metrics) and of each DBIRTH (device metrics); NDATA/DDATA metrics
  that carry only an alias are resolved through them;
- ``seq`` (0..255, wrapping): every NBIRTH starts it, every later message of the node (DBIRTH, NDATA,
  DDATA, DDEATH) must carry the next one. A gap is a ``data_loss`` event with the count of messages lost
  (``detail.lost``, mod 256; counters ``seq_gaps``, ``seq_lost``). A gap, data from a node whose birth we
  never saw, or an alias no birth defined, is also an event and a rebirth request: an NCMD
  ``Node Control/Rebirth`` = true (at most one per ``rebirth_interval_s`` per node, until it is born again);
- ``bdSeq``: the NBIRTH's bdSeq metric must equal the bdSeq of the NDEATH (the MQTT will of that session);
  an NDEATH whose bdSeq differs is late news of an older session and is ignored;
- the last value of each tag: NDEATH marks every tag of the node (and its devices), DDEATH every tag of the
  device, STALE: an event, and one sample per tag repeating the last value with ``QualityFlag.STALE`` and
  ``Quality.UNCERTAIN`` at the death's time. Data that still arrives from a dead node is flagged STALE.

Historical metrics (``is_historical``) are kept with ``QualityFlag.LATE`` and do not update the last value.
Numeric, boolean and DateTime metrics become samples; strings, bytes, data sets, templates and arrays are
counted (``skipped``) and not turned into samples. Tags are ``<group>/<edge node>/<device>/<metric name>``
(``tag_template``; node-level metrics use ``node_tag_template``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
from google.protobuf.message import DecodeError

from edge.core.datamodel import EventKind, Quality, QualityFlag
from ingest.codecs import CodecEvent, Decoded, RawMessage
from ingest.codecs.sparkplug.payload import (
    BDSEQ_METRIC,
    NAMESPACE,
    bdseq_of,
    metric_value,
    pb,
    rebirth_command,
)
from ingest.codecs.sparkplug.state import Alias, NodeState
from ingest.deadletter import Reason
from ingest.settings import MqttSourceSettings


class SparkplugCodec:
    """Sparkplug B host-side decoding. ``clock`` (seconds, monotonic) only paces rebirth requests."""

    @classmethod
    def from_settings(cls, settings: MqttSourceSettings) -> SparkplugCodec:
        return cls(tag_template=settings.sparkplug_tag_template,
                   node_tag_template=settings.sparkplug_node_tag_template,
                   rebirth_interval_s=settings.sparkplug_rebirth_interval_s)

    def __init__(self, *, tag_template: str = "{group}/{node}/{device}/{metric}",
                 node_tag_template: str = "{group}/{node}/{metric}", rebirth_interval_s: float = 5.0,
                 request_rebirth: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.tag_template = tag_template
        self.node_tag_template = node_tag_template
        self.rebirth_interval_s = rebirth_interval_s
        self.request_rebirth = request_rebirth
        self.clock = clock
        self.nodes: dict[tuple[str, str], NodeState] = {}
        self.counters: Counter[str] = Counter()
        self.host_states: dict[str, bool] = {}

    def tag(self, group: str, node: str, device: str, metric: str) -> str:
        if device:
            return self.tag_template.format(group=group, node=node, device=device, metric=metric)
        return self.node_tag_template.format(group=group, node=node, metric=metric)

    # -- entry ----------------------------------------------------------------------------------------------
    def decode(self, messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None:
        for topic, payload in messages:
            try:
                self._decode_one(topic, payload, recv_us, out)
            except (DecodeError, ValueError, TypeError, LookupError, OverflowError, RuntimeError) as exc:
                self.counters["undecodable"] += 1
                out.dead.add(recv_us, Reason.UNDECODABLE, f"{type(exc).__name__}: {exc}", payload=payload)

    def _decode_one(self, topic: str, payload: bytes, recv_us: int, out: Decoded) -> None:
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != NAMESPACE:
            out.dead.add(recv_us, Reason.UNMAPPED_TOPIC, f"not a Sparkplug B topic: {topic!r}",
                         payload=payload)
            return
        if parts[1] == "STATE":
            self._state(parts, payload, recv_us, out)
            return
        if len(parts) not in (4, 5):
            out.dead.add(recv_us, Reason.UNMAPPED_TOPIC, f"not a Sparkplug B topic: {topic!r}",
                         payload=payload)
            return
        group, mtype, node = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) == 5 else ""
        if mtype in ("NCMD", "DCMD"):
            return  # commands to edge nodes (ours or another host's)
        try:
            p = pb.Payload.FromString(payload)
        except DecodeError as exc:
            out.dead.add(recv_us, Reason.UNDECODABLE, f"not a Sparkplug B payload: {exc}", payload=payload)
            self.counters["undecodable"] += 1
            return
        key = (group, node)
        st = self.nodes.get(key)
        if st is None:
            st = self.nodes[key] = NodeState(group, node)
        self.counters[mtype] += 1
        if mtype == "NBIRTH":
            self._nbirth(st, p, recv_us, out)
        elif mtype == "NDEATH":
            self._ndeath(st, p, recv_us, out)
        elif mtype in ("DBIRTH", "NDATA", "DDATA", "DDEATH"):
            if mtype in ("DBIRTH", "DDATA", "DDEATH") and not device:
                out.dead.add(recv_us, Reason.UNMAPPED_TOPIC, f"{mtype} without a device: {topic!r}",
                             payload=payload)
                return
            self._check_seq(st, p, mtype, recv_us, out)
            if mtype == "DBIRTH":
                self._dbirth(st, device, p, recv_us, out)
            elif mtype == "DDEATH":
                self._ddeath(st, device, p, recv_us, out)
            else:
                self._data(st, device, p, recv_us, out, payload)
        else:
            out.dead.add(recv_us, Reason.UNMAPPED_TOPIC, f"unknown Sparkplug message type {mtype!r}",
                         payload=payload)

    # -- state machine ---------------------------------------------------------------------------------------
    def _state(self, parts: list[str], payload: bytes, recv_us: int, out: Decoded) -> None:
        host = "/".join(parts[2:])
        try:
            obj = orjson.loads(payload)
            online = bool(obj["online"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            out.dead.add(recv_us, Reason.UNDECODABLE, f"STATE of {host!r}: {exc}", payload=payload)
            return
        if self.host_states.get(host) != online:
            self.host_states[host] = online
            out.events.append(CodecEvent(recv_us, EventKind.CONNECTION,
                                         f"Sparkplug host {host} is {'online' if online else 'offline'}",
                                         {"host": host, "online": online}))

    def _request_rebirth(self, st: NodeState, why: str, recv_us: int, out: Decoded,
                         detail: dict[str, Any] | None = None) -> None:
        now = self.clock()
        if not self.request_rebirth or now - st.rebirth_requested_at < self.rebirth_interval_s:
            return
        st.rebirth_requested_at = now
        out.commands.append(rebirth_command(st.group, st.node))
        self.counters["rebirth_requests"] += 1
        out.events.append(CodecEvent(recv_us, EventKind.DATA_QUALITY,
                                     f"Sparkplug node {st.group}/{st.node}: {why}; rebirth requested",
                                     {"group": st.group, "node": st.node, "reason": why, **(detail or {})}))

    def _check_seq(self, st: NodeState, p: Any, mtype: str, recv_us: int, out: Decoded) -> None:
        if not st.born:
            self._request_rebirth(st, f"{mtype} before any NBIRTH", recv_us, out)
            return
        if not p.HasField("seq"):
            return
        seq = int(p.seq) & 0xFF
        expected = ((st.seq if st.seq is not None else -1) + 1) % 256
        st.seq = seq
        if seq != expected:
            # messages the node numbered and we never got: at least this many (seq wraps at 256, so a gap
            # of 256 or more cannot be told from a shorter one); every gap is an event, never rate-limited
            lost = (seq - expected) % 256
            self.counters["seq_gaps"] += 1
            self.counters["seq_lost"] += lost
            st.lost += lost
            out.events.append(CodecEvent(
                recv_us, EventKind.DATA_LOSS,
                f"Sparkplug node {st.group}/{st.node}: {lost} message(s) lost upstream "
                f"(seq expected {expected}, got {seq}, in {mtype})",
                {"group": st.group, "node": st.node, "expected": expected, "got": seq, "lost": lost,
                 "message_type": mtype, "lost_total": st.lost}))
            self._request_rebirth(st, f"sequence gap (expected {expected}, got {seq})", recv_us, out,
                                  {"expected": expected, "got": seq})

    def _ts(self, m: Any, p: Any, recv_us: int) -> int:
        if m.HasField("timestamp"):
            return int(m.timestamp) * 1000
        if p.HasField("timestamp"):
            return int(p.timestamp) * 1000
        return recv_us

    def _nbirth(self, st: NodeState, p: Any, recv_us: int, out: Decoded) -> None:
        bdseq = bdseq_of(p)
        st.born, st.online, st.bdseq = True, True, bdseq
        st.seq = int(p.seq) & 0xFF if p.HasField("seq") else 0
        st.aliases = {}
        st.devices = {}
        st.dead_devices = set()
        st.rebirth_requested_at = -1e18
        self._birth_metrics(st, "", st.aliases, p, recv_us, out)
        out.events.append(CodecEvent(recv_us, EventKind.CONNECTION,
                                     f"Sparkplug node {st.group}/{st.node} born",
                                     {"group": st.group, "node": st.node, "bdSeq": bdseq,
                                      "metrics": len(p.metrics)}))

    def _dbirth(self, st: NodeState, device: str, p: Any, recv_us: int, out: Decoded) -> None:
        table: dict[int, Alias] = {}
        st.devices[device] = table
        st.dead_devices.discard(device)
        self._birth_metrics(st, device, table, p, recv_us, out)
        out.events.append(CodecEvent(recv_us, EventKind.CONNECTION,
                                     f"Sparkplug device {st.group}/{st.node}/{device} born",
                                     {"group": st.group, "node": st.node, "device": device,
                                      "metrics": len(p.metrics)}))

    def _birth_metrics(self, st: NodeState, device: str, table: dict[int, Alias], p: Any, recv_us: int,
                       out: Decoded) -> None:
        ts: list[int] = []
        codes: list[int] = []
        vals: list[float] = []
        flags: list[int] = []
        for m in p.metrics:
            name = m.name
            if not name:
                continue
            tag = self.tag(st.group, st.node, device, name)
            if m.HasField("alias"):
                table[int(m.alias)] = Alias(tag, int(m.datatype))
            st.device_of[tag] = device
            if name == BDSEQ_METRIC or name.startswith("Node Control/"):
                continue
            self._sample(st, tag, m, int(m.datatype), p, recv_us, ts, codes, vals, flags, out)
        self._add(out, ts, codes, vals, flags)

    def _sample(self, st: NodeState, tag: str, m: Any, datatype: int, p: Any, recv_us: int, ts: list[int],
                codes: list[int], vals: list[float], flags: list[int], out: Decoded) -> None:
        if m.is_null:
            self.counters["null"] += 1
            return
        v = metric_value(m, datatype)
        if v is None:
            self.counters["skipped"] += 1
            return
        f = 0
        if m.is_historical:
            f |= int(QualityFlag.LATE)
            self.counters["historical"] += 1
        else:
            st.last[tag] = (v, 0)
        if not st.online:
            f |= int(QualityFlag.STALE)
        ts.append(self._ts(m, p, recv_us))
        codes.append(out.code(tag))
        vals.append(v)
        flags.append(f)

    @staticmethod
    def _add(out: Decoded, ts: list[int], codes: list[int], vals: list[float], flags: list[int],
             quality: int = 0) -> None:
        if ts:
            n = len(ts)
            out.add(np.asarray(ts, dtype=np.int64), np.asarray(codes, dtype=np.int32),
                    np.asarray(vals, dtype=np.float64), np.full(n, quality, dtype=np.int16),
                    np.asarray(flags, dtype=np.int32))

    def _data(self, st: NodeState, device: str, p: Any, recv_us: int, out: Decoded, payload: bytes) -> None:
        if device:
            table = st.devices.get(device)
            if table is None:
                table = {}
                if st.born:
                    self._request_rebirth(st, f"DDATA from device {device} before its DBIRTH", recv_us, out)
        else:
            table = st.aliases
        ts: list[int] = []
        codes: list[int] = []
        vals: list[float] = []
        flags: list[int] = []
        unknown = 0
        # fast path for the common metric (an alias from the birth, a float or double value, not historical);
        # everything else takes the general path below
        p_ts = int(p.timestamp) * 1000 if p.HasField("timestamp") else recv_us
        stale = 0 if st.online else int(QualityFlag.STALE)
        code = out.code
        last = st.last
        for m in p.metrics:
            al = m.alias
            a = table.get(al) if (al or m.HasField("alias")) else None
            if a is not None:
                kind = m.WhichOneof("value")
                if (kind == "double_value" or kind == "float_value") and not m.is_historical:
                    v = m.double_value if kind == "double_value" else m.float_value
                    t = m.timestamp
                    ts.append(t * 1000 if t else p_ts)
                    codes.append(code(a.tag))
                    vals.append(v)
                    flags.append(stale)
                    last[a.tag] = (v, 0)
                    continue
            if m.HasField("alias"):
                a = table.get(int(m.alias))
                if a is None:
                    if m.name:
                        tag, datatype = self.tag(st.group, st.node, device, m.name), int(m.datatype)
                    else:
                        unknown += 1
                        continue
                else:
                    tag, datatype = a.tag, (int(m.datatype) if m.datatype else a.datatype)
            elif m.name:
                tag = self.tag(st.group, st.node, device, m.name)
                datatype = int(m.datatype)
            else:
                unknown += 1
                continue
            self._sample(st, tag, m, datatype, p, recv_us, ts, codes, vals, flags, out)
        if device and device in st.dead_devices:
            flags = [f | int(QualityFlag.STALE) for f in flags]
        self._add(out, ts, codes, vals, flags)
        if unknown:
            self.counters["unknown_alias"] += unknown
            out.dead.add(recv_us, Reason.UNKNOWN_ALIAS,
                         f"{unknown} metric(s) with an alias no birth defined "
                         f"({st.group}/{st.node}/{device})",
                         tag=self.tag(st.group, st.node, device, "?"), payload=payload)
            self._request_rebirth(st, "unknown alias", recv_us, out)

    def _stale(self, st: NodeState, devices: set[str] | None, ts_us: int, out: Decoded) -> int:
        """One STALE sample per tag of ``devices`` (None: all of the node) repeating its last value."""
        ts: list[int] = []
        codes: list[int] = []
        vals: list[float] = []
        flags: list[int] = []
        for tag, (v, _q) in st.last.items():
            if devices is not None and st.device_of.get(tag, "") not in devices:
                continue
            ts.append(ts_us)
            codes.append(out.code(tag))
            vals.append(v)
            flags.append(int(QualityFlag.STALE))
        self._add(out, ts, codes, vals, flags, quality=int(Quality.UNCERTAIN))
        return len(ts)

    def _ndeath(self, st: NodeState, p: Any, recv_us: int, out: Decoded) -> None:
        bdseq = bdseq_of(p)
        if st.bdseq is not None and bdseq is not None and bdseq != st.bdseq:
            self.counters["ndeath_ignored"] += 1
            out.events.append(CodecEvent(recv_us, EventKind.CONNECTION,
                                         f"Sparkplug node {st.group}/{st.node}: NDEATH of an older session "
                                         f"(bdSeq {bdseq}, current {st.bdseq}) ignored",
                                         {"group": st.group, "node": st.node, "bdSeq": bdseq}))
            return
        ts_us = int(p.timestamp) * 1000 if p.HasField("timestamp") else recv_us
        st.online = False
        n = self._stale(st, None, ts_us, out)
        out.events.append(CodecEvent(recv_us, EventKind.CONNECTION,
                                     f"Sparkplug node {st.group}/{st.node} died; {n} tags stale",
                                     {"group": st.group, "node": st.node, "bdSeq": bdseq, "stale_tags": n}))

    def _ddeath(self, st: NodeState, device: str, p: Any, recv_us: int, out: Decoded) -> None:
        ts_us = int(p.timestamp) * 1000 if p.HasField("timestamp") else recv_us
        st.dead_devices.add(device)
        n = self._stale(st, {device}, ts_us, out)
        out.events.append(CodecEvent(recv_us, EventKind.CONNECTION,
                                     f"Sparkplug device {st.group}/{st.node}/{device} died; {n} tags stale",
                                     {"group": st.group, "node": st.node, "device": device, "stale_tags": n}))
