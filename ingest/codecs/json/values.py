"""Values and qualities to float64 and ``Quality``: vectorised where numpy takes the whole list, and one
value at a time for the careful path (which dead-letters exactly the bad ones)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.core.datamodel import Quality

_QUALITY_NAMES = {"good": 0, "uncertain": 1, "bad": 2, "g": 0, "u": 1, "b": 2, "ok": 0}


def quality_of(q: Any) -> int:
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


def value_of(v: Any) -> tuple[float, bool]:
    """A value to float64, and whether it was coerced (a numeric string). Raises TypeError/ValueError."""
    if isinstance(v, bool):
        return (1.0 if v else 0.0), False
    if isinstance(v, int | float):
        return float(v), False
    if isinstance(v, str):
        return float(v.strip()), True
    raise TypeError(f"value of type {type(v).__name__}")


def as_1d(items: list[Any]) -> np.ndarray | None:
    """``items`` as a one-dimensional numpy array; None if numpy cannot make one."""
    try:
        arr = np.asarray(items)
    except (ValueError, TypeError, OverflowError):
        return None
    return arr if arr.ndim == 1 else None


def quality_array(q: np.ndarray) -> np.ndarray:
    """int64 qualities (class 0/1/2 or a full 32-bit StatusCode; negative = BAD) to Quality, vectorized."""
    return np.where(q < 0, 2, np.where(q <= 2, q, np.minimum(2, (q >> 30) & 3))).astype(np.int16)


def fast_float(vals: list[Any]) -> np.ndarray | None:
    arr = as_1d(vals)
    if arr is not None and arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    return None


def fast_quality(quals: list[Any]) -> np.ndarray | None:
    arr = as_1d(quals)
    if arr is not None and arr.dtype.kind in "iu":
        a = arr.astype(np.int64)
        if (a >= 0).all() and (a <= 0xFFFFFFFF).all():
            return quality_array(a)
    return None
