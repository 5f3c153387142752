"""Timestamps to epoch microseconds: ISO 8601 strings (one Arrow cast) and epoch numbers (s/ms/us/ns, by
config or guessed per value from the magnitude), vectorised, with a careful per-value path."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from edge.core.datamodel import TS

TsFormat = Literal["auto", "iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"]
_EPOCH_SCALE = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1, "epoch_ns": 0}


def ts_of(t: Any, fmt: TsFormat) -> int:
    """One timestamp to epoch microseconds (careful path). Raises ValueError."""
    if isinstance(t, bool) or t is None:
        raise ValueError(f"timestamp {t!r}")
    if isinstance(t, int | float):
        if not math.isfinite(t) or abs(t) > 1e19:
            raise ValueError(f"timestamp {t!r} out of range")
        return int(epoch_to_us(np.array([t], dtype=np.float64), fmt)[0])
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


def epoch_to_us(arr: np.ndarray, fmt: TsFormat) -> np.ndarray:
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


def cast_iso(strings: pa.Array) -> np.ndarray | None:
    """ISO 8601 strings to epoch microseconds with one Arrow cast; None if any does not parse."""
    try:
        return np.asarray(strings.cast(TS).cast(pa.int64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # no offsets at all: the strings are UTC
        return np.asarray(strings.cast(pa.timestamp("us")).cast(pa.int64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
