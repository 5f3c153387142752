"""JSON payloads: one sample or an array of samples per message, tag from the topic (and/or the payload).

Configured by a topic pattern (``plant/{line}/{machine}/{measure}``) and a tag template
(``{line}.{machine}.{measure}``; ``{topic}`` is the whole topic, ``{name}`` the value at ``tag_path``), and by
dotted paths to the value, timestamp and quality (``value``, ``ts``, ``q``; ``data.0.v`` indexes lists).

Fast path: orjson parses each message, the fields of all messages of a drain are gathered into Python
lists with C-level getters, and then converted once, vectorized: numbers with numpy, ISO 8601 strings with
an Arrow cast (UTC offsets and ``Z`` honoured; strings without an offset are UTC), epoch numbers in
s/ms/us/ns (by config, or guessed per value from the magnitude). Anything the fast path cannot take falls
back to a careful per-element path that dead-letters exactly the bad elements with their reason.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa

from edge.datamodel import TS, Quality, QualityFlag
from ingest.codecs import Decoded, RawMessage
from ingest.deadletter import Reason

TsFormat = Literal["auto", "iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"]
_MISSING = object()
_EPOCH_SCALE = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1, "epoch_ns": 0}
_QUALITY_NAMES = {"good": 0, "uncertain": 1, "bad": 2, "g": 0, "u": 1, "b": 2, "ok": 0}

Getter = Callable[[Any], Any]


def make_getter(path: str) -> Getter:
    """A fast getter for a dotted path (``a.b.0.c``); raises KeyError/IndexError/TypeError when absent."""
    parts: list[str | int] = [int(p) if p.lstrip("-").isdigit() else p for p in path.split(".") if p != ""]
    if not parts:
        return lambda obj: obj
    if len(parts) == 1:
        return operator.itemgetter(parts[0])
    getters = [operator.itemgetter(p) for p in parts]

    def get(obj: Any) -> Any:
        for g in getters:
            obj = g(obj)
        return obj

    return get


def _get_or(getter: Getter, default: Any) -> Getter:
    def get(obj: Any) -> Any:
        try:
            return getter(obj)
        except (KeyError, IndexError, TypeError):
            return default

    return get


def compile_topic_pattern(pattern: str) -> re.Pattern[str]:
    """``plant/{line}/{machine}/{measure}`` to a regex with named groups (``{rest*}`` spans levels)."""
    out = []
    for piece in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\*?\})", pattern):
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            out.append(f"(?P<{name[:-1]}>.+)" if name.endswith("*") else f"(?P<{name}>[^/]+)")
        else:
            out.append(re.escape(piece).replace(r"\+", "[^/]+").replace(r"\#", ".*"))
    return re.compile("^" + "".join(out) + "$")


def _quality_of(q: Any) -> int:
    """A quality value (OPC-UA class 0/1/2, a full 32-bit StatusCode, a name, a bool) to Quality."""
    if q is None:
        return int(Quality.GOOD)
    if isinstance(q, bool):
        return int(Quality.GOOD if q else Quality.BAD)
    if isinstance(q, int | float) and not isinstance(q, bool):
        iq = int(q)
        if 0 <= iq <= 2:
            return iq
        return min(2, (iq >> 30) & 3) if iq >= 0 else int(Quality.BAD)
    if isinstance(q, str):
        v = _QUALITY_NAMES.get(q.strip().lower())
        if v is not None:
            return v
    raise ValueError(f"unknown quality {q!r}")


def _value_of(v: Any) -> tuple[float, bool]:
    """A value to float64, and whether it was coerced (a numeric string). Raises TypeError/ValueError."""
    if isinstance(v, bool):
        return (1.0 if v else 0.0), False
    if isinstance(v, int | float):
        return float(v), False
    if isinstance(v, str):
        return float(v.strip()), True
    raise TypeError(f"value of type {type(v).__name__}")


def _ts_of(t: Any, fmt: TsFormat) -> int:
    """One timestamp to epoch microseconds (careful path). Raises ValueError."""
    if isinstance(t, bool) or t is None:
        raise ValueError(f"timestamp {t!r}")
    if isinstance(t, int | float):
        if not math.isfinite(t) or abs(t) > 1e19:
            raise ValueError(f"timestamp {t!r} out of range")
        return int(_epoch_to_us(np.array([t], dtype=np.float64), fmt)[0])
    if isinstance(t, str):
        s = t.strip()
        if s.endswith(("Z", "z")):
            s = s[:-1] + "+00:00"
        dt = datetime.fromisoformat(s)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise ValueError(f"timestamp of type {type(t).__name__}")


def _epoch_to_us(arr: np.ndarray, fmt: TsFormat) -> np.ndarray:
    """Epoch numbers to microseconds; ``auto`` guesses the unit per value from its magnitude."""
    if fmt in ("epoch_s", "epoch_ms", "epoch_us", "epoch_ns"):
        scale = _EPOCH_SCALE[fmt]
        if arr.dtype.kind in "iu":
            a = arr.astype(np.int64)
            return a // 1000 if scale == 0 else a * scale
        return np.round(arr / 1000.0 if scale == 0 else arr * scale).astype(np.int64)
    a = np.abs(arr.astype(np.float64))
    mult = np.where(a >= 1e17, 1e-3, np.where(a >= 1e14, 1.0, np.where(a >= 1e11, 1e3, 1e6)))
    if arr.dtype.kind in "iu":
        ai = arr.astype(np.int64)
        out: np.ndarray = np.where(a >= 1e17, ai // 1000,
                                   np.where(a >= 1e14, ai, np.where(a >= 1e11, ai * 1000, ai * 1_000_000)))
        return out
    return np.round(arr.astype(np.float64) * mult).astype(np.int64)


class JsonCodec:
    """JSON payloads to samples. See the module docstring for the configuration."""

    def __init__(self, *, topic_pattern: str | None = None, tag_template: str = "{topic}",
                 value_path: str = "value", ts_path: str | None = "ts", quality_path: str | None = "quality",
                 samples_path: str | None = None, tag_path: str | None = None,
                 ts_format: TsFormat = "auto", max_topic_cache: int = 100_000) -> None:
        self.topic_re = compile_topic_pattern(topic_pattern) if topic_pattern else None
        self.tag_template = tag_template
        self.value_path, self.ts_path, self.quality_path = value_path, ts_path, quality_path
        self.samples_path, self.tag_path = samples_path, tag_path
        self.ts_format: TsFormat = ts_format
        self._get_value = make_getter(value_path)
        self._get_ts = make_getter(ts_path) if ts_path else None
        self._get_quality = _get_or(make_getter(quality_path), 0) if quality_path else None
        self._get_samples = make_getter(samples_path) if samples_path is not None else None
        self._get_name = make_getter(tag_path) if tag_path else None
        self._topic_cache: dict[str, tuple[dict[str, str], str | None]] = {}
        self._tag_cache: dict[tuple[str, str], str] = {}
        self._max_cache = max_topic_cache

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
        tag = None if self._get_name is not None else self.tag_template.format_map(_Vars(tvars, topic))
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
            tag = self.tag_template.format_map(_Vars({**tvars, "name": str(name)}, topic))
            self._tag_cache[key] = tag
        return tag

    # -- decoding -----------------------------------------------------------------------------------------
    def decode(self, messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None:
        vals: list[Any] = []
        tss: list[Any] = []
        quals: list[Any] = []
        codes: list[int] = []
        owner: list[int] = []  # message index of each sample (only for the careful path)
        get_v, get_t, get_q, get_s = self._get_value, self._get_ts, self._get_quality, self._get_samples
        get_n = self._get_name
        loads = orjson.loads
        code = out.code
        dead = out.dead
        for i, (topic, payload) in enumerate(messages):
            try:
                tvars, tag = self._topic_vars(topic)
            except (LookupError, ValueError, IndexError) as exc:
                dead.add(recv_us, Reason.UNMAPPED_TOPIC, f"{exc} (topic {topic!r})", payload=payload)
                continue
            try:
                obj = loads(payload)
            except orjson.JSONDecodeError as exc:
                dead.add(recv_us, Reason.UNDECODABLE, f"not JSON: {exc}", tag=tag, payload=payload)
                continue
            if get_s is None:
                try:
                    v = get_v(obj)
                    t = get_t(obj) if get_t is not None else recv_us
                    q = get_q(obj) if get_q is not None else 0
                    c = code(tag) if tag is not None else code(self._named_tag(topic, tvars, get_n(obj)))  # type: ignore[misc]
                except (LookupError, TypeError) as exc:
                    self._careful(obj, topic, tvars, tag, payload, recv_us, out, exc)
                    continue
                vals.append(v)
                tss.append(t)
                quals.append(q)
                codes.append(c)
                owner.append(i)
            else:
                try:
                    samples = get_s(obj)
                    if not isinstance(samples, list):
                        raise TypeError(f"{self.samples_path!r} is not a list")
                    mv = list(map(get_v, samples))
                    mt = list(map(get_t, samples)) if get_t is not None else [recv_us] * len(samples)
                    mq = list(map(get_q, samples)) if get_q is not None else [0] * len(samples)
                    if tag is not None:
                        mc = [code(tag)] * len(samples)
                    else:
                        mc = [code(self._named_tag(topic, tvars, get_n(s))) for s in samples]  # type: ignore[misc]
                except (LookupError, TypeError) as exc:
                    self._careful(obj, topic, tvars, tag, payload, recv_us, out, exc)
                    continue
                vals.extend(mv)
                tss.extend(mt)
                quals.extend(mq)
                codes.extend(mc)
                owner.extend([i] * len(mv))
        if vals:
            self._convert(vals, tss, quals, codes, owner, messages, recv_us, out)

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
            self._convert(vals, tss, quals, codes, [0] * len(vals), [(topic, payload)], recv_us, out)

    def _convert(self, vals: list[Any], tss: list[Any], quals: list[Any], codes: list[int], owner: list[int],
                 messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None:
        n = len(vals)
        ok = np.ones(n, dtype=bool)
        flags = np.zeros(n, dtype=np.int32)
        # values
        values = _fast_float(vals)
        if values is None:
            values = np.empty(n, dtype=np.float64)
            for i, v in enumerate(vals):
                try:
                    values[i], coerced = _value_of(v)
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
                    ts[i] = _ts_of(t, self.ts_format)
                except (ValueError, TypeError, OverflowError) as exc:
                    ok[i] = False
                    self._dead(out, i, Reason.BAD_TIMESTAMP, f"timestamp {t!r}: {exc}", codes, owner,
                               messages, recv_us)
        # quality
        quality = _fast_quality(quals)
        if quality is None:
            quality = np.zeros(n, dtype=np.int16)
            for i, q in enumerate(quals):
                if not ok[i]:
                    continue
                try:
                    quality[i] = _quality_of(q)
                except (ValueError, TypeError, OverflowError) as exc:
                    ok[i] = False
                    self._dead(out, i, Reason.TYPE_COERCION, f"quality {q!r}: {exc}", codes, owner, messages,
                               recv_us)
        code_arr = np.asarray(codes, dtype=np.int32)
        if ok.all():
            out.add(ts, code_arr, values, quality, flags)
        else:
            out.add(ts[ok], code_arr[ok], values[ok], quality[ok], flags[ok])

    @staticmethod
    def _dead(out: Decoded, i: int, reason: Reason, detail: str, codes: list[int], owner: list[int],
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
            try:
                return np.asarray(strings.cast(TS).cast(pa.int64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            try:  # no offsets at all: the strings are UTC
                return np.asarray(strings.cast(pa.timestamp("us")).cast(pa.int64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        try:
            arr = np.asarray(tss)
        except (ValueError, TypeError, OverflowError):
            return None
        kind = arr.dtype.kind
        if kind in "iuf" and arr.ndim == 1 and self.ts_format != "iso":
            if kind == "f" and not (np.isfinite(arr).all() and (np.abs(arr) < 1e19).all()):
                return None
            try:
                with np.errstate(over="raise", invalid="raise"):
                    return _epoch_to_us(arr, self.ts_format)
            except (FloatingPointError, OverflowError):
                return None
        return None


def _fast_float(vals: list[Any]) -> np.ndarray | None:
    try:
        arr = np.asarray(vals)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.dtype.kind in "fiub" and arr.ndim == 1:
        return arr.astype(np.float64)
    return None


def _fast_quality(quals: list[Any]) -> np.ndarray | None:
    try:
        arr = np.asarray(quals)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.dtype.kind in "iu" and arr.ndim == 1:
        a = arr.astype(np.int64)
        if (a >= 0).all() and (a <= 0xFFFFFFFF).all():
            return np.where(a <= 2, a, np.minimum(2, (a >> 30) & 3)).astype(np.int16)
    return None


class _Vars(dict[str, str]):
    """Template variables: named topic groups, ``{topic}``, and topic levels ``{l0}``, ``{l1}``..."""

    def __init__(self, values: dict[str, str], topic: str) -> None:
        super().__init__(values)
        self._levels = topic.split("/")

    def __missing__(self, key: str) -> str:
        if key.startswith("l") and key[1:].isdigit() and int(key[1:]) < len(self._levels):
            return self._levels[int(key[1:])]
        raise LookupError(f"tag template names {{{key}}}, which the topic pattern does not define")
