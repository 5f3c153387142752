"""Dead letters: what a codec or the data-quality gate could not accept, with the raw payload and the reason.

A dead letter never stops the stream: codecs and the gate collect them in a :class:`DeadLetters` buffer,
which counts every reason and turns them into a ``DEAD_LETTERS`` Arrow batch for the historian.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from edge.core.datamodel import DEAD_LETTERS, DICT_STR, TS


class Reason(enum.StrEnum):
    """Why a payload or a sample was rejected (the ``reason`` column of ``DEAD_LETTERS``)."""

    # codecs: the payload itself
    UNDECODABLE = "undecodable"  # not JSON / not protobuf / not UTF-8
    BAD_SHAPE = "bad_shape"  # decodable, but not the shape the codec was configured for
    MISSING_FIELD = "missing_field"  # the value (or timestamp) path is absent
    TYPE_COERCION = "type_coercion"  # a value that is not a number, a boolean or a numeric string
    BAD_TIMESTAMP = "bad_timestamp"  # a timestamp that cannot be parsed
    UNMAPPED_TOPIC = "unmapped_topic"  # the topic does not match the configured pattern
    UNKNOWN_ALIAS = "unknown_alias"  # Sparkplug: an alias no birth certificate defined
    # the gate: hard rules on decoded samples
    NAN = "nan"
    INF = "inf"
    TS_FUTURE = "ts_future"
    TS_PAST = "ts_past"
    DUPLICATE = "duplicate"
    UNMAPPED_TAG = "unmapped_tag"
    # the process stage: the gate or the contextualizer raised on the batch (the error is the detail)
    PROCESS_ERROR = "process_error"


@dataclass(frozen=True)
class DeadLetter:
    ts_us: int
    source: str
    reason: str
    detail: str = ""
    tag: str | None = None
    payload: bytes | None = None


class DeadLetters:
    """A buffer of dead letters that counts each reason (``counters``: reason -> count, never reset)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[DeadLetter] = []
        self.counters: Counter[str] = Counter()

    def add(self, ts_us: int, reason: str, detail: str = "", *, tag: str | None = None,
            payload: bytes | None = None) -> None:
        self.items.append(DeadLetter(ts_us, self.source, str(reason), detail[:1000], tag, payload))
        self.counters[str(reason)] += 1

    def __len__(self) -> int:
        return len(self.items)

    def take(self) -> list[DeadLetter]:
        items, self.items = self.items, []
        return items

    def take_batch(self) -> pa.RecordBatch:
        return dead_letter_batch(self.take())


def dead_letter_batch(items: Sequence[DeadLetter]) -> pa.RecordBatch:
    """A ``DEAD_LETTERS`` batch from dead letter records."""
    return pa.RecordBatch.from_arrays(
        [
            pa.array([d.ts_us for d in items], type=pa.int64()).cast(TS),
            pa.array([d.source for d in items], type=pa.string()).dictionary_encode().cast(DICT_STR),
            pa.array([d.tag for d in items], type=pa.string()),
            pa.array([d.reason for d in items], type=pa.string()).dictionary_encode().cast(DICT_STR),
            pa.array([d.detail for d in items], type=pa.string()),
            pa.array([d.payload for d in items], type=pa.binary()),
        ],
        schema=DEAD_LETTERS,
    )


def dead_letters_from_samples(samples: pa.RecordBatch, mask: np.ndarray, reasons: np.ndarray,
                              details: Iterable[str] | None = None) -> pa.RecordBatch:
    """Rows of a SAMPLES batch selected by ``mask`` as dead letters (``reasons``: one string per row of mask).

    The payload column holds the sample as ``tag,ts_us,value`` text, so nothing the source sent is lost.
    """
    idx = np.flatnonzero(mask)
    n = len(idx)
    if n == 0:
        return dead_letter_batch([])
    rows = samples.take(pa.array(idx, type=pa.int64()))
    tags = rows.column("tag").cast(pa.string())
    ts_us = rows.column("ts").cast(pa.int64())
    values = rows.column("value").to_numpy(zero_copy_only=False)
    tag_list = tags.to_pylist()
    ts_list = ts_us.to_pylist()
    payloads = [f"{t},{ts},{v!r}".encode()
                for t, ts, v in zip(tag_list, ts_list, values.tolist(), strict=True)]
    detail_list = list(details) if details is not None else [""] * n
    return pa.RecordBatch.from_arrays(
        [
            rows.column("recv_ts"),
            rows.column("source"),
            tags,
            pa.array(reasons, type=pa.string()).dictionary_encode().cast(DICT_STR),
            pa.array(detail_list, type=pa.string()),
            pa.array(payloads, type=pa.binary()),
        ],
        schema=DEAD_LETTERS,
    )
