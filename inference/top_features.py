"""The top contributing features of an insight row as JSON text: the k features with the largest absolute
contribution (ties to the lower index: what a stable argsort gives), numbers as Python's ``repr`` of the
6-digit rounding.

``top_features`` is the one-row reference. The Numba kernels give the same bytes: the rounding is a checked
scaled rounding, exact when the check passes; the rare value the check cannot vouch for goes through Python's
own formatting (``top_features_sure``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
from numba import njit

from inference.idhash import put_int


def top_features(names: Sequence[str], contributions: np.ndarray, k: int) -> str:
    """JSON list of the k features with the largest absolute contribution, largest first."""
    c = np.nan_to_num(np.asarray(contributions, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    order = np.argsort(-np.abs(c), kind="stable")[:k]
    return json.dumps([{"feature": names[i], "contribution": float(f"{c[i]:.6g}")} for i in order])


def _python_sig6(x: float) -> tuple[int, int]:
    """(significand, d) of ``f"{x:.6g}"`` for x > 0 by Python's own formatting: the repr of the rounded
    value (at most 6 digits; fewer for subnormals) as significand × 10**-d, 1e5 <= significand < 1e6."""
    t = Decimal(repr(float(f"{x:.6g}"))).as_tuple()
    digits = len(t.digits)
    return int("".join(map(str, t.digits))) * 10 ** (6 - digits), 5 - (digits - 1 + int(t.exponent))


_P10 = np.array([float(10**i) for i in range(23)])  # 1e0 .. 1e22, all exact doubles


@njit(cache=True)
def _sig6(a: float) -> tuple[int, int]:  # pragma: no cover - compiled
    """``f"{a:.6g}"`` of a >= 0 as (significand, d): a rounds to significand × 10**-d with 6 significant
    digits (1e5 <= significand <= 1e6; (0, 0) for zero). A scaled rounding, exact because both the rounding
    and the scale are checked (10**|d| <= 1e22 is exact, one rounding of the product, not near a tie, the
    scaled value has 6 digits); when the check fails the significand is -1 and Python formats that value."""
    if a == 0.0:
        return 0, 0
    d = 5 - math.floor(math.log10(a))
    if d > 22 or d < -22:
        return -1, d
    y = a * _P10[d] if d >= 0 else a / _P10[-d]
    if y < 1e5 or y >= 1e6 or abs(y - math.floor(y) - 0.5) <= 1e-6:
        return -1, d
    return math.floor(y + 0.5), d


@njit(cache=True)
def _copy(out: np.ndarray, pos: int, src: np.ndarray, start: int, end: int) -> int:  # pragma: no cover
    """``src[start:end]`` into ``out`` at ``pos`` (indexed from a fixed base: faster than a loop that
    advances ``pos``, and than a slice assignment, for copies this short)."""
    n = end - start
    for t in range(n):
        out[pos + t] = src[start + t]
    return pos + n


@njit(cache=True)
def _put_float(
    out: np.ndarray, pos: int, mant: int, d: int, neg: bool, digits: np.ndarray
) -> int:  # pragma: no cover - compiled
    """Python's ``repr`` of the float mant × 10**-d (mant has at most 7 digits), written at ``pos``."""
    if neg:
        out[pos] = 45  # -
        pos += 1
    if mant == 0:
        out[pos] = 48
        out[pos + 1] = 46
        out[pos + 2] = 48
        return pos + 3
    nd = 1
    u = mant // 10
    while u > 0:
        nd += 1
        u //= 10
    u = mant
    for i in range(nd - 1, -1, -1):
        digits[i] = 48 + u % 10
        u //= 10
    p = nd - d  # the decimal point: value = 0.DIGITS × 10**p
    n = nd
    while n > 1 and digits[n - 1] == 48:
        n -= 1
    if -4 < p <= 16:
        if p > 0:
            if n <= p:
                pos = _copy(out, pos, digits, 0, n)
                for _ in range(p - n):
                    out[pos] = 48
                    pos += 1
                out[pos] = 46
                out[pos + 1] = 48
                return pos + 2
            pos = _copy(out, pos, digits, 0, p)
            out[pos] = 46
            return _copy(out, pos + 1, digits, p, n)
        out[pos] = 48
        out[pos + 1] = 46
        pos += 2
        for _ in range(-p):
            out[pos] = 48
            pos += 1
        return _copy(out, pos, digits, 0, n)
    out[pos] = digits[0]
    pos += 1
    if n > 1:
        out[pos] = 46
        pos = _copy(out, pos + 1, digits, 1, n)
    out[pos] = 101  # e
    ex = p - 1
    out[pos + 1] = 43 if ex >= 0 else 45
    pos += 2
    ex = abs(ex)
    if ex < 10:
        out[pos] = 48
        pos += 1
    return put_int(out, pos, ex)


@njit(cache=True)
def _top_k_row(contrib: np.ndarray, i: int, kk: int, vals: np.ndarray, order: np.ndarray) -> None:
    # pragma: no cover - compiled
    """The kk largest |contrib[i]| (NaN and infinities count as 0), largest first, equal values in index
    order (what a stable argsort of the negated values gives), into ``order`` (1-d)."""
    cnt = 0
    for j in range(contrib.shape[1]):
        v = abs(float(contrib[i, j]))
        if not np.isfinite(v):
            v = 0.0
        if cnt < kk:
            p = cnt
            cnt += 1
        elif v > vals[kk - 1]:
            p = kk - 1
        else:
            continue
        while p > 0 and vals[p - 1] < v:
            vals[p] = vals[p - 1]
            order[p] = order[p - 1]
            p -= 1
        vals[p] = v
        order[p] = j


@njit(cache=True)
def _round_top_row(
    contrib: np.ndarray, i: int, kk: int, vals: np.ndarray, order: np.ndarray, mant: np.ndarray,
    dexp: np.ndarray, neg: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Row i's top-kk order and the 6-digit rounding of those values (1-d outputs); returns how many of them
    the rounding could not vouch for (significand -1: Python formats those)."""
    _top_k_row(contrib, i, kk, vals, order)
    unsure = 0
    for t in range(kk):
        x = float(contrib[i, order[t]])
        if not np.isfinite(x):
            x = 0.0
        neg[t] = math.copysign(1.0, x) < 0.0
        m, d = _sig6(abs(x))
        mant[t] = m
        dexp[t] = d
        unsure += m < 0
    return unsure


@njit(cache=True)
def _json_row(
    out: np.ndarray, pos: int, kk: int, order: np.ndarray, mant: np.ndarray, dexp: np.ndarray,
    neg: np.ndarray, frag_buf: np.ndarray, frag_off: np.ndarray, digits: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """One row's top-features JSON at ``pos`` (``frag`` j is ``{"feature": <name j>, "contribution": ``);
    returns the position after it."""
    out[pos] = 91  # [
    pos += 1
    for t in range(kk):
        if t:
            out[pos] = 44  # ,
            out[pos + 1] = 32
            pos += 2
        o = order[t]
        lo = frag_off[o]
        ln = frag_off[o + 1] - lo
        out[pos:pos + ln] = frag_buf[lo:lo + ln]  # a slice: faster than a byte loop here
        pos += ln
        pos = _put_float(out, pos, mant[t], dexp[t], neg[t], digits)
        out[pos] = 125  # }
        pos += 1
    out[pos] = 93  # ]
    return pos + 1


@njit(nogil=True, cache=True)
def _top_k(contrib: np.ndarray, k: int) -> Any:  # pragma: no cover - compiled
    """Per row the top-k order and the 6-digit rounding of those values: (order, mant, dexp, neg, unsure)."""
    n = contrib.shape[0]
    kk = max(0, min(k, contrib.shape[1]))
    order = np.zeros((n, kk), dtype=np.int64)
    mant = np.zeros((n, kk), dtype=np.int64)
    dexp = np.zeros((n, kk), dtype=np.int64)
    neg = np.zeros((n, kk), dtype=np.bool_)
    vals = np.empty(max(kk, 1), dtype=np.float64)
    unsure = 0
    for i in range(n):
        unsure += _round_top_row(contrib, i, kk, vals, order[i], mant[i], dexp[i], neg[i])
    return order, mant, dexp, neg, unsure


@njit(nogil=True, cache=True)
def _write_json(
    order: np.ndarray, frag_buf: np.ndarray, frag_off: np.ndarray, mant: np.ndarray, dexp: np.ndarray,
    neg: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The top-features JSON of each row from the top-k order and rounded values, as Arrow string buffers
    (offsets, data); ``frag`` j is ``{"feature": <name j>, "contribution": ``."""
    n, k = order.shape
    longest = 0
    for j in range(frag_off.shape[0] - 1):
        longest = max(longest, frag_off[j + 1] - frag_off[j])
    out = np.empty(n * (2 + k * (longest + 32)) + 2, dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int32)
    digits = np.empty(24, dtype=np.uint8)
    pos = 0
    for i in range(n):
        pos = _json_row(out, pos, k, order[i], mant[i], dexp[i], neg[i], frag_buf, frag_off, digits)
        offsets[i + 1] = pos
    return offsets, out[:pos]


def top_features_sure(
    contrib: np.ndarray, k: int, frag_buf: np.ndarray, frag_off: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The top-features JSON of every row with Python's formatting for the values the kernel's rounding
    could not vouch for (significand -1): the rare path of ``build_insights``."""
    order, mant, dexp, neg, _ = _top_k(contrib, k)
    for i, t in zip(*np.nonzero(mant < 0), strict=True):
        x = float(contrib[i, order[i, t]])
        m, d = _python_sig6(abs(x) if math.isfinite(x) else 0.0)
        mant[i, t] = m
        dexp[i, t] = d
    offsets, data = _write_json(order, frag_buf, frag_off, mant, dexp, neg)
    return offsets, data
