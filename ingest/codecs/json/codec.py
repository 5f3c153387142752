"""JSON payloads: one sample or an array of samples per message, tag from the topic (and/or the payload).

Configured by a topic pattern (``plant/{line}/{machine}/{measure}``) and a tag template
(``{line}.{machine}.{measure}``; ``{topic}`` is the whole topic, ``{name}`` the value at ``tag_path``), and by
dotted paths to the value, timestamp and quality (``value``, ``ts``, ``q``; ``data.0.v`` indexes lists).

Fast path: each message is parsed, the fields of all messages of a drain are gathered into Python lists
with C-level getters, and then converted once, vectorized (``values``, ``timestamps``). Anything the fast
path cannot take falls back to a careful per-element path that dead-letters exactly the bad elements with
their reason.

Parsing: where every configured path is one key (``value``, ``ts``, ``samples``; no ``tag_path``), msgspec
decodes each message straight into typed structs (``typed``: no dicts built, unknown keys skipped). A
message that does not fit the types (a string value, a quality name, an integer beyond int64, a missing
field, not JSON at all) is parsed again with orjson and goes the general way, so the rows and dead letters
are exactly those of the orjson path (a differential fuzz test checks it).

``arrow_json=True`` (off by default) parses the batched form (``samples_path`` set) of a whole decode call
with ``pyarrow.json.read_json`` instead (``arrow``; same rows and dead letters, checked by a differential
fuzz test). It did not beat orjson end to end on the appliance, so the orjson path is the default;
``arrow_threads=True`` lets Arrow use its threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from edge.core.datamodel import QualityFlag
from ingest.codecs import Decoded, RawMessage
from ingest.codecs.json.arrow import ArrowBatched
from ingest.codecs.json.paths import TopicVars, compile_topic_pattern, get_or, make_getter
from ingest.codecs.json.timestamps import TsFormat, cast_iso, epoch_to_us, ts_of
from ingest.codecs.json.typed import TypedMessages
from ingest.codecs.json.values import as_1d, fast_float, fast_quality, quality_of, value_of
from ingest.deadletter import Reason


class JsonCodec:
    """JSON payloads to samples. See the module docstring for the configuration."""

    def __init__(self, *, topic_pattern: str | None = None, tag_template: str = "{topic}",
                 value_path: str = "value", ts_path: str | None = "ts", quality_path: str | None = "quality",
                 samples_path: str | None = None, tag_path: str | None = None,
                 ts_format: TsFormat = "auto", max_topic_cache: int = 100_000,
                 arrow_json: bool = False, arrow_threads: bool = False, typed_decode: bool = True) -> None:
        self.topic_re = compile_topic_pattern(topic_pattern) if topic_pattern else None
        self.tag_template = tag_template
        self.value_path, self.ts_path, self.quality_path = value_path, ts_path, quality_path
        self.samples_path, self.tag_path = samples_path, tag_path
        self.ts_format: TsFormat = ts_format
        self._get_value = make_getter(value_path)
        self._get_ts = make_getter(ts_path) if ts_path else None
        self._get_quality = get_or(make_getter(quality_path), 0) if quality_path else None
        self._get_quality_strict = make_getter(quality_path) if quality_path else None  # C-level, may raise
        self._get_samples = make_getter(samples_path) if samples_path is not None else None
        self._get_name = make_getter(tag_path) if tag_path else None
        self._topic_cache: dict[str, tuple[dict[str, str], str | None]] = {}
        self._tag_cache: dict[tuple[str, str], str] = {}
        self._max_cache = max_topic_cache
        self._arrow = ArrowBatched(self, arrow_threads) if arrow_json else None
        self._typed = TypedMessages.build(self) if typed_decode else None  # False: orjson for everything

    @classmethod
    def from_settings(cls, s: Any) -> JsonCodec:
        """From an ``ingest.settings.MqttSourceSettings``."""
        return cls(topic_pattern=getattr(s, "topic_pattern", None), tag_template=s.tag_from_topic,
                   value_path=s.value_path, ts_path=s.ts_path, quality_path=s.quality_path,
                   samples_path=s.samples_path, tag_path=getattr(s, "tag_path", None),
                   ts_format=getattr(s, "ts_format", "auto"))

    # -- tags ---------------------------------------------------------------------------------------------
    def _topic_vars(self, topic: str) -> tuple[dict[str, str], str | None]:
        """Template variables of a topic, and the tag when it does not depend on the payload (cached)."""
        hit = self._topic_cache.get(topic)
        if hit is not None:
            return hit
        if self.topic_re is not None:
            m = self.topic_re.match(topic)
            if m is None:
                raise LookupError(f"topic {topic!r} does not match the pattern")
            tvars = dict(m.groupdict())
        else:
            tvars = {}
        tvars["topic"] = topic
        tag = None if self._get_name is not None else self.tag_template.format_map(TopicVars(tvars, topic))
        if len(self._topic_cache) >= self._max_cache:
            self._topic_cache.clear()
        self._topic_cache[topic] = hit = (tvars, tag)
        return hit

    def _named_tag(self, topic: str, tvars: dict[str, str], name: Any) -> str:
        key = (topic, str(name))
        tag = self._tag_cache.get(key)
        if tag is None:
            if len(self._tag_cache) >= self._max_cache:
                self._tag_cache.clear()
            tag = self.tag_template.format_map(TopicVars({**tvars, "name": str(name)}, topic))
            self._tag_cache[key] = tag
        return tag

    # -- decoding -----------------------------------------------------------------------------------------
    def decode(self, messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None:
        if self._arrow is not None and self._arrow.usable and len(messages) > 1:
            self._arrow.decode(messages, recv_us, out)
        else:
            self.decode_objects(messages, recv_us, out)

    def decode_objects(self, messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None:
        """The per-message path: orjson, then the fields gathered and converted at once."""
        vals: list[Any] = []
        tss: list[Any] = []
        quals: list[Any] = []
        # the samples' tag codes and messages, in runs: sample j of the call belongs to run k when
        # sum(counts[:k]) <= j < sum(counts[:k + 1]) (a batched message with one tag is one run)
        codes: list[int] = []
        owner: list[int] = []  # message index (for dead letters)
        counts: list[int] = []
        code = out.code
        dead = out.dead
        typed = self._typed.fields if self._typed is not None else None
        for i, (topic, payload) in enumerate(messages):
            try:
                tvars, tag = self._topic_vars(topic)
            except (LookupError, ValueError, IndexError) as exc:
                dead.add(recv_us, Reason.UNMAPPED_TOPIC, f"{exc} (topic {topic!r})", payload=payload)
                continue
            got = typed(payload, recv_us) if typed is not None and tag is not None else None
            if got is not None:
                mv, mt, mq = got
                mc, mn = [code(tag)], [len(mv)]  # type: ignore[arg-type]
            else:
                try:
                    obj = orjson.loads(payload)
                except orjson.JSONDecodeError as exc:
                    dead.add(recv_us, Reason.UNDECODABLE, f"not JSON: {exc}", tag=tag, payload=payload)
                    continue
                try:
                    mv, mt, mq, mc, mn = self._object_fields(obj, topic, tvars, tag, recv_us, code)
                except (LookupError, TypeError) as exc:
                    self._careful(obj, topic, tvars, tag, payload, recv_us, out, exc)
                    continue
            vals.extend(mv)
            tss.extend(mt)
            quals.extend(mq)
            codes.extend(mc)
            owner.extend([i] * len(mc))
            counts.extend(mn)
        if vals:
            run_counts = np.asarray(counts, dtype=np.int64)
            self._convert(vals, tss, quals, np.repeat(np.asarray(codes, dtype=np.int32), run_counts),
                          np.repeat(np.asarray(owner, dtype=np.int64), run_counts), messages, recv_us, out)

    def _object_fields(self, obj: Any, topic: str, tvars: dict[str, str], tag: str | None, recv_us: int,
                       code: Callable[[str], int]) -> tuple[list[Any], ...]:
        """Values, timestamps, qualities, tag codes and their run lengths of one parsed message.
        Raises LookupError/TypeError (the careful path then takes the message)."""
        if self._get_samples is None:
            v = self._get_value(obj)
            t = self._get_ts(obj) if self._get_ts is not None else recv_us
            q = self._get_quality(obj) if self._get_quality is not None else 0
            c = code(tag) if tag is not None else code(self._named_tag(topic, tvars, self._get_name(obj)))  # type: ignore[misc]
            return [v], [t], [q], [c], [1]
        samples = self._get_samples(obj)
        if not isinstance(samples, list):
            raise TypeError(f"{self.samples_path!r} is not a list")
        mv, mt, mq = self._fields(samples, recv_us)
        if tag is not None:
            return mv, mt, mq, [code(tag)], [len(samples)]
        mc = [code(self._named_tag(topic, tvars, self._get_name(s))) for s in samples]  # type: ignore[misc]
        return mv, mt, mq, mc, [1] * len(mc)

    def _fields(self, samples: list[Any], recv_us: int) -> tuple[list[Any], list[Any], list[Any]]:
        """Values, timestamps and qualities of samples, C-level getters. Raises LookupError/TypeError."""
        n = len(samples)
        mv = list(map(self._get_value, samples))
        mt = list(map(self._get_ts, samples)) if self._get_ts is not None else [recv_us] * n
        if self._get_quality_strict is None:
            mq = [0] * n
        else:
            try:  # every sample has a quality: the C-level getter (faster than the defaulting one)
                mq = list(map(self._get_quality_strict, samples))
            except (LookupError, TypeError):
                mq = list(map(self._get_quality, samples))  # type: ignore[arg-type]
        return mv, mt, mq

    def _careful(self, obj: Any, topic: str, tvars: dict[str, str], tag: str | None, payload: bytes,
                 recv_us: int, out: Decoded, first_error: Exception) -> None:
        """Per element: keep what is good, dead-letter the rest with the reason."""
        if self._get_samples is not None:
            try:
                samples = self._get_samples(obj)
            except (KeyError, IndexError, TypeError):
                out.dead.add(recv_us, Reason.BAD_SHAPE, f"no list at {self.samples_path!r}", tag=tag,
                             payload=payload)
                return
            if not isinstance(samples, list):
                out.dead.add(recv_us, Reason.BAD_SHAPE, f"{self.samples_path!r} is not a list", tag=tag,
                             payload=payload)
                return
        else:
            samples = [obj]
        vals: list[Any] = []
        tss: list[Any] = []
        quals: list[Any] = []
        codes: list[int] = []
        for s in samples:
            try:
                stag = tag if tag is not None else self._named_tag(topic, tvars, self._get_name(s))  # type: ignore[misc]
            except (LookupError, TypeError):
                out.dead.add(recv_us, Reason.MISSING_FIELD, f"no tag name at {self.tag_path!r}",
                             payload=payload)
                continue
            try:
                v = self._get_value(s)
            except (KeyError, IndexError, TypeError):
                out.dead.add(recv_us, Reason.MISSING_FIELD, f"no value at {self.value_path!r}", tag=stag,
                             payload=payload)
                continue
            if self._get_ts is not None:
                try:
                    t = self._get_ts(s)
                except (KeyError, IndexError, TypeError):
                    out.dead.add(recv_us, Reason.MISSING_FIELD, f"no timestamp at {self.ts_path!r}", tag=stag,
                                 payload=payload)
                    continue
            else:
                t = recv_us
            q = self._get_quality(s) if self._get_quality is not None else 0
            vals.append(v)
            tss.append(t)
            quals.append(q)
            codes.append(out.code(stag))
        if vals:
            self._convert(vals, tss, quals, np.asarray(codes, dtype=np.int32), np.zeros(len(vals), np.int64),
                          [(topic, payload)], recv_us, out)

    def _convert(self, vals: list[Any], tss: list[Any], quals: list[Any], codes: np.ndarray,
                 owner: np.ndarray, messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None:
        n = len(vals)
        ok = np.ones(n, dtype=bool)
        flags = np.zeros(n, dtype=np.int32)
        # values
        values = fast_float(vals)
        if values is None:
            values = np.empty(n, dtype=np.float64)
            for i, v in enumerate(vals):
                try:
                    values[i], coerced = value_of(v)
                    if coerced:
                        flags[i] |= int(QualityFlag.COERCED)
                except (TypeError, ValueError, OverflowError) as exc:
                    ok[i] = False
                    self._dead(out, i, Reason.TYPE_COERCION, f"value {v!r}: {exc}", codes, owner, messages,
                               recv_us)
        # timestamps
        ts = self._fast_ts(tss) if self._get_ts is not None else np.full(n, recv_us, dtype=np.int64)
        if ts is None:
            ts = np.zeros(n, dtype=np.int64)
            for i, t in enumerate(tss):
                if not ok[i]:
                    continue
                try:
                    ts[i] = ts_of(t, self.ts_format)
                except (ValueError, TypeError, OverflowError) as exc:
                    ok[i] = False
                    self._dead(out, i, Reason.BAD_TIMESTAMP, f"timestamp {t!r}: {exc}", codes, owner,
                               messages, recv_us)
        # quality
        quality = fast_quality(quals)
        if quality is None:
            quality = np.zeros(n, dtype=np.int16)
            for i, q in enumerate(quals):
                if not ok[i]:
                    continue
                try:
                    quality[i] = quality_of(q)
                except (ValueError, TypeError, OverflowError) as exc:
                    ok[i] = False
                    self._dead(out, i, Reason.TYPE_COERCION, f"quality {q!r}: {exc}", codes, owner, messages,
                               recv_us)
        if ok.all():
            out.add(ts, codes, values, quality, flags)
        else:
            out.add(ts[ok], codes[ok], values[ok], quality[ok], flags[ok])

    @staticmethod
    def _dead(out: Decoded, i: int, reason: Reason, detail: str, codes: np.ndarray, owner: np.ndarray,
              messages: Sequence[RawMessage], recv_us: int) -> None:
        out.dead.add(recv_us, reason, detail, tag=out.tag_names[codes[i]], payload=messages[owner[i]][1])

    def _fast_ts(self, tss: list[Any]) -> np.ndarray | None:
        if isinstance(tss[0], str):
            if self.ts_format.startswith("epoch"):
                return None
            try:
                strings = pa.array(tss, type=pa.string())
            except (pa.ArrowTypeError, pa.ArrowInvalid):
                return None
            return cast_iso(strings)
        arr = as_1d(tss)
        if arr is None:
            return None
        kind = arr.dtype.kind
        if kind in "iuf" and self.ts_format != "iso":
            if kind == "f" and not (np.isfinite(arr).all() and (np.abs(arr) < 1e19).all()):
                return None
            try:
                with np.errstate(over="raise", invalid="raise"):
                    return epoch_to_us(arr, self.ts_format)
            except (FloatingPointError, OverflowError):
                return None
        return None
