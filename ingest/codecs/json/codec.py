"""JSON payloads: one sample or an array of samples per message, tag from the topic (and/or the payload).

Configured by a topic pattern (``plant/{line}/{machine}/{measure}``) and a tag template
(``{line}.{machine}.{measure}``; ``{topic}`` is the whole topic, ``{name}`` the value at ``tag_path``), and by
dotted paths to the value, timestamp and quality (``value``, ``ts``, ``q``; ``data.0.v`` indexes lists).

Fast path: each message is parsed, the fields of all messages of a drain are gathered into Python lists
with C-level getters, and then converted once, vectorized: numbers with numpy, ISO 8601 strings with
an Arrow cast (UTC offsets and ``Z`` honoured; strings without an offset are UTC), epoch numbers in
s/ms/us/ns (by config, or guessed per value from the magnitude). Anything the fast path cannot take falls
back to a careful per-element path that dead-letters exactly the bad elements with their reason.

Parsing: where every configured path is one key (``value``, ``ts``, ``samples``; no ``tag_path``), msgspec
decodes each message straight into typed structs (``_TypedMessages``: no dicts built, unknown keys skipped;
about 6 us less a 100-sample message than orjson plus getters). A message that does not fit the types (a
string value, a quality name, an integer beyond int64, a missing field, not JSON at all) is parsed again with
orjson and goes the general way, so the rows and dead letters are exactly those of the orjson path (a
differential fuzz test checks it).

``arrow_json=True`` (off by default) parses the batched form (``samples_path`` set) of a whole decode call
with ``pyarrow.json.read_json`` instead (``_ArrowBatched``; same rows and dead letters, checked by a
differential fuzz test). On the 2-core box it did not beat orjson end to end (694-819 vs 678-797 ns of CPU a
sample, see BENCHMARKS.md), so the orjson path is the default; ``arrow_threads=True`` lets Arrow use its
threads.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from edge.core.datamodel import TS, Quality, QualityFlag
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
    """Epoch numbers to microseconds; ``auto`` guesses the unit per value from its magnitude. Raises
    OverflowError where a result does not fit int64 microseconds (or is not finite), instead of wrapping."""
    if fmt in ("epoch_s", "epoch_ms", "epoch_us", "epoch_ns"):
        scale = _EPOCH_SCALE[fmt]
        mult: Any = 1e-3 if scale == 0 else float(scale)
        f = arr.astype(np.float64)
        approx = f / 1000.0 if scale == 0 else f * scale
    else:
        a = np.abs(arr.astype(np.float64))
        mult = np.where(a >= 1e17, 1e-3, np.where(a >= 1e14, 1.0, np.where(a >= 1e11, 1e3, 1e6)))
        approx = arr.astype(np.float64) * mult
    with np.errstate(invalid="ignore", over="ignore"):
        if not (np.abs(approx) < 2.0**63).all():  # NaN fails this too
            raise OverflowError("timestamp beyond the range of int64 microseconds")
    if arr.dtype.kind in "iu":  # exact: nanoseconds divided in their own type (uint64 above 2**63 too)
        ns = mult == 1e-3
        out: np.ndarray = np.where(ns, (arr // 1000).astype(np.int64),
                                   arr.astype(np.int64) * np.where(ns, 1, mult).astype(np.int64))
        return out
    return np.round(approx).astype(np.int64)


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
        self._get_quality = _get_or(make_getter(quality_path), 0) if quality_path else None
        self._get_quality_strict = make_getter(quality_path) if quality_path else None  # C-level, may raise
        self._get_samples = make_getter(samples_path) if samples_path is not None else None
        self._get_name = make_getter(tag_path) if tag_path else None
        self._topic_cache: dict[str, tuple[dict[str, str], str | None]] = {}
        self._tag_cache: dict[tuple[str, str], str] = {}
        self._max_cache = max_topic_cache
        self._arrow = _ArrowBatched(self, arrow_threads) if arrow_json else None
        self._typed = _TypedMessages.build(self) if typed_decode else None  # False: orjson for everything

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
            try:  # every sample has a quality: the C-level getter (3x faster than the defaulting one)
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
            return _cast_iso(strings)
        arr = _as_1d(tss)
        if arr is None:
            return None
        kind = arr.dtype.kind
        if kind in "iuf" and self.ts_format != "iso":
            if kind == "f" and not (np.isfinite(arr).all() and (np.abs(arr) < 1e19).all()):
                return None
            try:
                with np.errstate(over="raise", invalid="raise"):
                    return _epoch_to_us(arr, self.ts_format)
            except (FloatingPointError, OverflowError):
                return None
        return None


def _cast_iso(strings: pa.Array) -> np.ndarray | None:
    """ISO 8601 strings to epoch microseconds with one Arrow cast; None if any does not parse."""
    try:
        return np.asarray(strings.cast(TS).cast(pa.int64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # no offsets at all: the strings are UTC
        return np.asarray(strings.cast(pa.timestamp("us")).cast(pa.int64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _as_1d(items: list[Any]) -> np.ndarray | None:
    """``items`` as a one-dimensional numpy array; None if numpy cannot make one."""
    try:
        arr = np.asarray(items)
    except (ValueError, TypeError, OverflowError):
        return None
    return arr if arr.ndim == 1 else None


def _quality_array(q: np.ndarray) -> np.ndarray:
    """int64 qualities (class 0/1/2 or a full 32-bit StatusCode; negative = BAD) to Quality, vectorized."""
    return np.where(q < 0, 2, np.where(q <= 2, q, np.minimum(2, (q >> 30) & 3))).astype(np.int16)


def _fast_float(vals: list[Any]) -> np.ndarray | None:
    arr = _as_1d(vals)
    if arr is not None and arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    return None


def _fast_quality(quals: list[Any]) -> np.ndarray | None:
    arr = _as_1d(quals)
    if arr is not None and arr.dtype.kind in "iu":
        a = arr.astype(np.int64)
        if (a >= 0).all() and (a <= 0xFFFFFFFF).all():
            return _quality_array(a)
    return None


_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]  # wider: orjson's path decides
_TYPED_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)


class _TypedMessages:
    """msgspec decoding of messages whose configured paths are single keys, straight into structs.

    ``fields(payload, recv_us)`` gives the message's values, timestamps and qualities as lists, or None when
    the message does not fit the types; the codec then parses it with orjson and takes its general path. The
    types are chosen so that whatever fits gives what the orjson path gives: values are numbers (made floats,
    as numpy would), timestamps strings or numbers with integers within int64, qualities integers within int64
    (missing: 0); anything else (booleans, nulls, strings where numbers go, larger integers) does not fit.
    """

    def __init__(self, decoder: msgspec.json.Decoder[Any], batched: bool, has_ts: bool,
                 has_quality: bool) -> None:
        self._decode = decoder.decode
        self._batched = batched
        self._get_v = operator.attrgetter("v")
        self._get_t = operator.attrgetter("t") if has_ts else None
        self._get_q = operator.attrgetter("q") if has_quality else None

    @classmethod
    def build(cls, codec: JsonCodec) -> _TypedMessages | None:
        """The typed decoder for ``codec``'s paths, or None where a path is not a single key."""
        keys = [codec.value_path, codec.ts_path, codec.quality_path, codec.samples_path]
        plain = [k for k in keys if k is not None]
        if codec.tag_path is not None or any(not k or "." in k or k.lstrip("-").isdigit() for k in plain) \
                or len(set(plain)) != len(plain):
            return None
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [("v", float)]
        rename = {"v": codec.value_path}
        if codec.ts_path is not None:
            fields.append(("t", str | _Int64 | float))
            rename["t"] = codec.ts_path
        if codec.quality_path is not None:
            fields.append(("q", _Int64, 0))
            rename["q"] = codec.quality_path
        sample = msgspec.defstruct("TypedSample", fields, rename=rename, gc=False, kw_only=True)
        if codec.samples_path is None:
            return cls(msgspec.json.Decoder(sample), False, codec.ts_path is not None,
                       codec.quality_path is not None)
        message = msgspec.defstruct("TypedMessage", [("s", list[sample])],  # type: ignore[valid-type]
                                    rename={"s": codec.samples_path}, gc=False)
        return cls(msgspec.json.Decoder(message), True, codec.ts_path is not None,
                   codec.quality_path is not None)

    def fields(self, payload: bytes, recv_us: int) -> tuple[list[Any], list[Any], list[Any]] | None:
        try:
            obj = self._decode(payload)
        except _TYPED_ERRORS:
            return None
        samples = obj.s if self._batched else [obj]
        n = len(samples)
        get_t, get_q = self._get_t, self._get_q
        return (list(map(self._get_v, samples)),
                list(map(get_t, samples)) if get_t is not None else [recv_us] * n,
                list(map(get_q, samples)) if get_q is not None else [0] * n)


class _Vars(dict[str, str]):
    """Template variables: named topic groups, ``{topic}``, and topic levels ``{l0}``, ``{l1}``..."""

    def __init__(self, values: dict[str, str], topic: str) -> None:
        super().__init__(values)
        self._levels = topic.split("/")

    def __missing__(self, key: str) -> str:
        if key.startswith("l") and key[1:].isdigit() and int(key[1:]) < len(self._levels):
            return self._levels[int(key[1:])]
        raise LookupError(f"tag template names {{{key}}}, which the topic pattern does not define")


class _NotFast(Exception):
    """The Arrow path cannot take this decode call; the per-message path does."""


_TS_TYPES = {"timestamp": TS, "string": pa.string(), "int": pa.int64(), "float": pa.float64()}


class _ArrowBatched:
    """Batched payloads (``samples_path`` set): all messages of a decode call parsed by ``pyarrow.json``.

    The payloads are joined newline-delimited and read in one C++ call with an explicit schema (value float64,
    quality int64; the timestamp as ``timestamp[us, UTC]``, parsed by the reader, or, once the reader rejected
    one, as strings cast afterwards with per-element dead letters, or as epoch numbers int64/float64: learned
    from the first sample after a failure), the list of samples is flattened with ``list_flatten`` and
    ``list_parent_indices`` maps each sample back to its message (tag, dead letters). Equivalence with the
    per-message path: a message with anything the schema cannot hold (a missing value or timestamp, a null
    list, NaN) goes to the per-message path, alone; if Arrow rejects the input at all (a numeric string, a
    boolean value, a wrong shape, bad JSON), the whole call goes to the per-message path, and after repeated
    failures the Arrow path is skipped for up to 63 calls. Payloads that are not plain ASCII, contain a line
    break or do not start with ``{`` always take the per-message path (Arrow splits lines and does not
    validate UTF-8 the way orjson does). Not used (``usable`` False) with ``tag_path`` or list indices in a
    path.
    """

    MAX_FAILS = 7

    def __init__(self, codec: JsonCodec, threads: bool) -> None:
        self.codec = codec
        self.threads = threads
        self.usable = False
        self.ts_kind = "int" if codec.ts_format.startswith("epoch") else "timestamp"
        self._fails = 0
        self._skip = 0
        self.arrow_calls = 0  # decode calls that went through pyarrow.json (counters for tests and benches)
        self.fallback_calls = 0  # decode calls Arrow rejected or skipped (all per-message)
        self._options: dict[str, pajson.ParseOptions] = {}
        if codec.samples_path is None or codec.tag_path is not None:
            return

        def split(path: str) -> list[str]:
            return [p for p in path.split(".") if p != ""]

        self.samples_parts = split(codec.samples_path)
        self.fields: dict[str, list[str]] = {"value": split(codec.value_path)}
        if codec.ts_path:
            self.fields["ts"] = split(codec.ts_path)
        if codec.quality_path:
            self.fields["quality"] = split(codec.quality_path)
        paths = [self.samples_parts, *self.fields.values()]
        if any(not parts or any(p.lstrip("-").isdigit() for p in parts) for parts in paths):
            return  # list indices or the whole object: per-message path
        inner = list(self.fields.values())
        if any(a is not b and b[: len(a)] == a for a in inner for b in inner):
            return
        self.usable = True

    def _parse_options(self) -> pajson.ParseOptions:
        opts = self._options.get(self.ts_kind)
        if opts is None:
            types = {"value": pa.float64(), "ts": _TS_TYPES[self.ts_kind], "quality": pa.int64()}
            tree: dict[str, Any] = {}
            for name, parts in self.fields.items():
                node = tree
                for p in parts[:-1]:
                    node = node.setdefault(p, {})
                node[parts[-1]] = types[name]

            def build(node: dict[str, Any]) -> pa.DataType:
                return pa.struct([(k, build(v) if isinstance(v, dict) else v) for k, v in node.items()])

            t: pa.DataType = pa.list_(build(tree))
            for p in reversed(self.samples_parts[1:]):
                t = pa.struct([(p, t)])
            schema = pa.schema([(self.samples_parts[0], t)])
            opts = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
            self._options[self.ts_kind] = opts
        return opts

    def decode(self, messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None:
        codec = self.codec
        if self._skip > 0:
            self._skip -= 1
            self.fallback_calls += 1
            codec.decode_objects(messages, recv_us, out)
            return
        fast: list[int] = []
        tags: list[str] = []
        slow: list[RawMessage] = []
        for i, (topic, payload) in enumerate(messages):
            try:
                tag = codec._topic_vars(topic)[1]
            except (LookupError, ValueError, IndexError):
                slow.append(messages[i])  # dead-lettered there
                continue
            if (tag is not None and payload[:1] == b"{" and b"\n" not in payload and b"\r" not in payload
                    and payload.isascii()):
                fast.append(i)
                tags.append(tag)
            else:
                slow.append(messages[i])
        if len(fast) < 2:
            codec.decode_objects(messages, recv_us, out)
            return
        payloads = [messages[i][1] for i in fast]
        joined = b"\n".join(payloads)
        try:
            table = pajson.read_json(
                pa.BufferReader(joined),
                read_options=pajson.ReadOptions(use_threads=self.threads,
                                                block_size=self._block_size(payloads)),
                parse_options=self._parse_options(),
            )
            if table.num_rows != len(fast):
                raise _NotFast("row count")
            bad_msg = self._add(table, tags, payloads, recv_us, out)
        except (_NotFast, pa.ArrowException, ValueError, TypeError, OverflowError, FloatingPointError):
            self._failed(messages)
            self.fallback_calls += 1
            codec.decode_objects(messages, recv_us, out)
            return
        self._fails = 0
        self.arrow_calls += 1
        slow.extend(messages[fast[j]] for j in np.flatnonzero(bad_msg))
        if slow:
            codec.decode_objects(slow, recv_us, out)

    def _block_size(self, payloads: list[bytes]) -> int:
        """Blocks of about 128 kB when threaded (4-8 blocks a call in parallel), else one block."""
        longest = max(map(len, payloads)) + 1  # a block must hold a whole line
        total = sum(map(len, payloads)) + len(payloads)
        return max(longest, 1 << 17 if self.threads else total)

    def _add(self, table: pa.Table, tags: list[str], payloads: list[bytes], recv_us: int,
             out: Decoded) -> np.ndarray:
        """Adds the samples of the good messages; returns which messages need the per-message path."""
        lists: Any = table.column(0).combine_chunks()
        for p in self.samples_parts[1:]:
            lists = pc.struct_field(lists, p)
        bad_msg: np.ndarray = ~lists.is_valid().to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(lists)
        owner = pc.list_parent_indices(lists).to_numpy()
        if len(owner) != len(flat):
            raise _NotFast("list shape")

        def field(name: str) -> Any:
            a: Any = flat
            for p in self.fields[name]:
                a = pc.struct_field(a, p)
            return a

        v = field("value")
        values = v.fill_null(0.0).to_numpy(zero_copy_only=False)
        bad_el = v.is_null().to_numpy(zero_copy_only=False) | ~np.isfinite(values)
        t = None
        if "ts" in self.fields:
            t = field("ts")
            bad_el |= t.is_null().to_numpy(zero_copy_only=False)
        if bad_el.any():
            bad_msg[owner[bad_el]] = True
        keep = ~bad_msg[owner]
        all_kept = bool(keep.all())
        if not all_kept:
            owner, values = owner[keep], values[keep]
        n = len(owner)
        if n == 0:
            return bad_msg
        msg_codes = np.array([-1 if bad_msg[j] else out.code(tag) for j, tag in enumerate(tags)],
                             dtype=np.int32)
        codes = msg_codes[owner]
        if "quality" in self.fields:
            q = field("quality").fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            if not all_kept:
                q = q[keep]
            quality = _quality_array(q)
        else:
            quality = np.zeros(n, dtype=np.int16)
        ok = None
        fmt = self.codec.ts_format
        if t is None:
            ts = np.full(n, recv_us, dtype=np.int64)
        else:
            if not all_kept:
                t = t.filter(pa.array(keep))
            if self.ts_kind == "timestamp":
                ts = t.cast(pa.int64()).to_numpy(zero_copy_only=False)
            elif self.ts_kind == "string":
                cast = None if fmt.startswith("epoch") else _cast_iso(t)
                if cast is None:  # per element, dead-lettering exactly the bad ones
                    ts = np.zeros(n, dtype=np.int64)
                    ok = np.ones(n, dtype=bool)
                    for i, s in enumerate(t.to_pylist()):
                        try:
                            ts[i] = _ts_of(s, fmt)
                        except (ValueError, TypeError, OverflowError) as exc:
                            ok[i] = False
                            out.dead.add(recv_us, Reason.BAD_TIMESTAMP, f"timestamp {s!r}: {exc}",
                                         tag=out.tag_names[codes[i]], payload=payloads[owner[i]])
                else:
                    ts = cast
            else:
                if fmt == "iso":
                    raise _NotFast("numbers where ISO strings are configured")
                nums = t.to_numpy(zero_copy_only=False)
                if nums.dtype.kind == "f" and not (np.isfinite(nums).all() and (np.abs(nums) < 1e19).all()):
                    raise _NotFast("timestamp out of range")
                with np.errstate(over="raise", invalid="raise"):
                    ts = _epoch_to_us(nums, fmt)
        flags = np.zeros(n, dtype=np.int32)
        if ok is None:
            out.add(ts, codes, values, quality, flags)
        else:
            out.add(ts[ok], codes[ok], values[ok], quality[ok], flags[ok])
        return bad_msg

    def _failed(self, messages: Sequence[RawMessage]) -> None:
        """Back off (0, 1, 3, .. 63 calls) and learn what the timestamps look like."""
        self._fails = min(self._fails + 1, self.MAX_FAILS)
        self._skip = (1 << (self._fails - 1)) - 1
        codec = self.codec
        if codec._get_ts is None or codec._get_samples is None:
            return
        for _, payload in messages[:8]:
            try:
                t = codec._get_ts(codec._get_samples(orjson.loads(payload))[0])
            except (orjson.JSONDecodeError, LookupError, TypeError):
                continue
            if isinstance(t, str):  # parsed by the reader, unless that just failed: then cast (per element)
                epoch = codec.ts_format.startswith("epoch")
                self.ts_kind = "string" if epoch or self.ts_kind == "timestamp" else "timestamp"
            elif isinstance(t, float):
                self.ts_kind = "float"
            elif isinstance(t, int) and not isinstance(t, bool) and -(2**63) <= t < 2**63:
                self.ts_kind = "int"
            else:
                continue
            return
