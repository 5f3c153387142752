"""Payload codecs: bytes from a transport (an MQTT topic and payload) to columnar samples.

A codec decodes a list of raw messages at a time into a :class:`Decoded` accumulator: numpy columns of
samples (timestamp, tag code, value, quality, flags), dead letters for whatever it could not decode (with
the raw payload and the reason), events (births, deaths, sequence gaps) and commands to publish (a
Sparkplug rebirth request). A codec never raises on bad input: bad input is a dead letter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from edge.core.datamodel import SAMPLES, EventKind, samples_from_arrays
from ingest.deadletter import DeadLetters

RawMessage = tuple[str, bytes]  # (topic, payload)


@dataclass(frozen=True)
class Command:
    """Something a codec asks its transport to publish (for example a Sparkplug NCMD rebirth request)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True)
class CodecEvent:
    ts_us: int
    kind: EventKind
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


class Decoded:
    """Columns of decoded samples, built in parts; tags are codes into a per-accumulator dictionary."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tag_names: list[str] = []
        self.tag_index: dict[str, int] = {}
        self._ts: list[np.ndarray] = []
        self._codes: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._quality: list[np.ndarray] = []
        self._flags: list[np.ndarray] = []
        self.num_rows = 0
        self.dead = DeadLetters(source)
        self.events: list[CodecEvent] = []
        self.commands: list[Command] = []

    def code(self, tag: str) -> int:
        c = self.tag_index.get(tag)
        if c is None:
            c = self.tag_index[tag] = len(self.tag_names)
            self.tag_names.append(tag)
        return c

    def add(self, ts_us: np.ndarray, codes: np.ndarray, values: np.ndarray, quality: np.ndarray,
            flags: np.ndarray) -> None:
        n = len(ts_us)
        if n == 0:
            return
        self._ts.append(np.asarray(ts_us, dtype=np.int64))
        self._codes.append(np.asarray(codes, dtype=np.int32))
        self._values.append(np.asarray(values, dtype=np.float64))
        self._quality.append(np.asarray(quality, dtype=np.int16))
        self._flags.append(np.asarray(flags, dtype=np.int32))
        self.num_rows += n

    def to_samples(self, recv_us: int | np.ndarray) -> pa.RecordBatch:
        """The samples as a ``SAMPLES`` batch (tag and source dictionary encoded)."""
        if self.num_rows == 0:
            return pa.RecordBatch.from_pylist([], schema=SAMPLES)
        ts = np.concatenate(self._ts)
        n = len(ts)
        recv = np.full(n, recv_us, dtype=np.int64) if np.ndim(recv_us) == 0 else np.asarray(recv_us)
        tags = pa.DictionaryArray.from_arrays(pa.array(np.concatenate(self._codes), type=pa.int32()),
                                              pa.array(self.tag_names, type=pa.string()))
        return samples_from_arrays(ts, tags, np.concatenate(self._values), source=self.source,
                                   quality=np.concatenate(self._quality), flags=np.concatenate(self._flags),
                                   recv_ts_us=recv)


class Codec(Protocol):
    """Decodes raw messages into ``out``. Must not raise on bad input (it becomes a dead letter)."""

    def decode(self, messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None: ...
