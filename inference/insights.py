"""Insight rows (``edge.datamodel.INSIGHTS``): one per window per model, with severity, the features that
contributed most, and provenance.

Severity with hysteresis, per (asset, model):

* the raw level of a window is ``alarm`` when score >= threshold, ``warning`` when score >= warning_ratio ×
  threshold, else ``ok``;
* the level rises only after ``hysteresis_windows`` windows in a row with a raw level above it (it rises to
  the lowest raw level of that run), and falls only after ``hysteresis_windows`` windows in a row whose
  score is below ``clear_ratio`` × the bound of the current level (then to the raw level of the last of
  them). A score that wobbles around the threshold therefore does not flap;
* a gated window (bad or stale input, see ``inference.windows.gated``) is scored and recorded, but it neither
  advances nor resets the counters, and its severity is the current level: it can never raise one.
* a window whose score is not finite is gated.

``insight_id`` = blake2b-128 of (model, version, asset, window start, window end) in hex: the same window
scored by the same model version always gets the same id, so replays are idempotent.

``build_insights`` is columnar: the ids hashed by a Numba BLAKE2b over all rows (``inference.idhash``, the
same bytes and digests as ``insight_id``), the severity of all rows in one Numba call over per-(asset, model)
state arrays, the top features of all rows at once (stable argsort, argpartition for wide rows), their JSON
text (the same as ``top_features``) from one Arrow number cast and one Numba pass over the bytes, and the
Arrow columns built from numpy arrays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pyarrow as pa
from numba import njit

from edge.datamodel import INSIGHTS, TS
from inference.idhash import _put_int, _string_buffers, insight_id_column

LEVELS = ("ok", "warning", "alarm")
_LEVELS_ARROW = pa.array(LEVELS, type=pa.string())
_SEP = b"\x1f"


def insight_id(model: str, version: str, asset: str, window_start_us: int, window_end_us: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in (model, version, asset, str(int(window_start_us)), str(int(window_end_us))):
        h.update(part.encode())
        h.update(_SEP)
    return h.hexdigest()


@njit(nogil=True, cache=True)
def _severity_kernel(
    slots: np.ndarray,
    scores: np.ndarray,
    gated: np.ndarray,
    threshold: float,
    warning_ratio: float,
    clear_ratio: float,
    hysteresis: int,
    level: np.ndarray,
    up_run: np.ndarray,
    up_min: np.ndarray,
    down_run: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    warn = warning_ratio * threshold
    for i in range(slots.shape[0]):
        s = slots[i]
        sc = scores[i]
        if gated[i] or not np.isfinite(sc):
            out[i] = level[s]
            continue
        raw = 2 if sc >= threshold else (1 if sc >= warn else 0)
        # rising
        if raw > level[s]:
            up_run[s] += 1
            up_min[s] = min(up_min[s], raw) if up_run[s] > 1 else raw
            if up_run[s] >= hysteresis:
                level[s] = up_min[s]
                up_run[s] = 0
        else:
            up_run[s] = 0
        # falling
        if level[s] > 0:
            bound = threshold if level[s] == 2 else warn
            if sc < clear_ratio * bound:
                down_run[s] += 1
                if down_run[s] >= hysteresis:
                    level[s] = min(raw, level[s] - 1)
                    down_run[s] = 0
            else:
                down_run[s] = 0
        else:
            down_run[s] = 0
        out[i] = level[s]


class SeverityTracker:
    """Severity with hysteresis per (asset, model); the state of each pair is one slot in small arrays."""

    def __init__(
        self, warning_ratio: float = 0.8, clear_ratio: float = 0.9, hysteresis_windows: int = 2
    ) -> None:
        self.warning_ratio = warning_ratio
        self.clear_ratio = clear_ratio
        self.hysteresis_windows = hysteresis_windows
        self._slots: dict[str, dict[str, int]] = {}  # model -> asset -> slot
        self._n = 0
        self._level = np.zeros(16, dtype=np.int64)
        self._up_run = np.zeros(16, dtype=np.int64)
        self._up_min = np.full(16, 2, dtype=np.int64)
        self._down_run = np.zeros(16, dtype=np.int64)

    def _grow(self, need: int) -> None:
        cap = self._level.shape[0]
        if need <= cap:
            return
        new = max(need, 2 * cap)
        for attr, fill in (("_level", 0), ("_up_run", 0), ("_up_min", 2), ("_down_run", 0)):
            old = getattr(self, attr)
            arr = np.full(new, fill, dtype=np.int64)
            arr[:cap] = old
            setattr(self, attr, arr)

    def slots(self, model: str, assets: Sequence[str]) -> np.ndarray:
        """The state slot of each (asset, model), new pairs starting at level ok."""
        d = self._slots.setdefault(model, {})
        new = [a for a in dict.fromkeys(assets) if a not in d]
        if new:
            self._grow(self._n + len(new))
            for a in new:
                d[a] = self._n
                self._n += 1
        return np.fromiter(map(d.__getitem__, assets), dtype=np.int64, count=len(assets))

    def update_many(
        self, model: str, assets: Sequence[str], scores: np.ndarray, threshold: float, gated: np.ndarray
    ) -> np.ndarray:
        """Level index (0 ok, 1 warning, 2 alarm) of each row, rows in window order per asset."""
        slots = self.slots(model, assets)
        out = np.empty(slots.shape[0], dtype=np.int64)
        _severity_kernel(
            slots,
            np.ascontiguousarray(scores, dtype=np.float64),
            np.ascontiguousarray(gated, dtype=np.bool_),
            float(threshold),
            float(self.warning_ratio),
            float(self.clear_ratio),
            int(self.hysteresis_windows),
            self._level,
            self._up_run,
            self._up_min,
            self._down_run,
            out,
        )
        return out

    def update(self, asset: str, model: str, score: float, threshold: float, gated: bool) -> str:
        score_a = np.array([score], dtype=np.float64)
        lv = self.update_many(model, [asset], score_a, threshold, np.array([gated], dtype=np.bool_))
        return LEVELS[int(lv[0])]


def top_features(names: Sequence[str], contributions: np.ndarray, k: int) -> str:
    """JSON list of the k features with the largest absolute contribution, largest first."""
    c = np.nan_to_num(np.asarray(contributions, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    order = np.argsort(-np.abs(c), kind="stable")[:k]
    return json.dumps([{"feature": names[i], "contribution": float(f"{c[i]:.6g}")} for i in order])


_ARGSORT_MAX_FEATURES = 64  # measured: argsort beats argpartition + lexsort at 22 features


def _top_k_order(a: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the k largest values of ``a`` (>= 0), largest first, ties by index
    (what a stable argsort of ``-a`` gives), with argpartition over all rows at once."""
    f = a.shape[1]
    if f <= _ARGSORT_MAX_FEATURES:  # a short row: one stable argsort is faster than partition + lexsort
        return np.argsort(-a, axis=1, kind="stable")[:, :k]
    part = np.argpartition(-a, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(a, part, axis=1)
    order = np.take_along_axis(part, np.lexsort((part, -vals), axis=1), axis=1)
    # a tie across the partition boundary: argpartition may have kept a later index; redo those rows
    kth = vals.min(axis=1)
    amb = np.flatnonzero((a >= kth[:, None]).sum(axis=1) > k)
    if amb.size:
        order[amb] = np.argsort(-a[amb], axis=1, kind="stable")[:, :k]
    return order


def _sig6(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``f"{x:.6g}"`` of every element as (|significand| digits, d, negative): |x| rounds to significand
    × 10**-d with 6 significant digits (1e5 <= significand <= 1e6; 0 for zero). A scaled ``rint``, exact
    because both the rounding and the scale are checked: near ties and extreme exponents go through Python's
    own formatting."""
    flat = np.ascontiguousarray(v, dtype=np.float64).reshape(-1)
    neg = np.signbit(flat)
    a = np.abs(flat)
    mant = np.zeros(flat.shape[0], dtype=np.int64)
    dexp = np.zeros(flat.shape[0], dtype=np.int64)
    nz = np.flatnonzero(a > 0)
    if nz.size == 0:
        return mant, dexp, neg
    x = a[nz]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = 5 - np.floor(np.log10(x)).astype(np.int64)
        scale = 10.0 ** np.abs(np.clip(d, -22, 22))
        y = np.where(d >= 0, x * scale, x / scale)
    frac = y - np.floor(y)
    exact = (np.abs(d) <= 22) & (y >= 1e5) & (y < 1e6) & (np.abs(frac - 0.5) > 1e-6)
    m = np.rint(np.where(exact, y, 0.0)).astype(np.int64)
    for i in np.flatnonzero(~exact).tolist():
        # Python's own digits: repr of the rounded value (at most 6 digits; fewer for subnormals)
        t = Decimal(repr(float(f"{float(x[i]):.6g}"))).as_tuple()
        digits = len(t.digits)
        m[i] = int("".join(map(str, t.digits))) * 10 ** (6 - digits)
        d[i] = 5 - (digits - 1 + int(t.exponent))
    mant[nz] = m
    dexp[nz] = d
    return mant, dexp, neg


@njit(nogil=True, cache=True)
def _put_float(out: np.ndarray, pos: int, mant: int, d: int, neg: bool, digits: np.ndarray) -> int:
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
                out[pos:pos + n] = digits[:n]
                pos += n
                for _ in range(p - n):
                    out[pos] = 48
                    pos += 1
                out[pos] = 46
                out[pos + 1] = 48
                return pos + 2
            out[pos:pos + p] = digits[:p]
            pos += p
            out[pos] = 46
            out[pos + 1:pos + 1 + n - p] = digits[p:n]
            return pos + 1 + n - p
        out[pos] = 48
        out[pos + 1] = 46
        pos += 2
        for _ in range(-p):
            out[pos] = 48
            pos += 1
        out[pos:pos + n] = digits[:n]
        return pos + n
    out[pos] = digits[0]
    pos += 1
    if n > 1:
        out[pos] = 46
        out[pos + 1:pos + n] = digits[1:n]
        pos += n
    out[pos] = 101  # e
    ex = p - 1
    out[pos + 1] = 43 if ex >= 0 else 45
    pos += 2
    ex = abs(ex)
    if ex < 10:
        out[pos] = 48
        pos += 1
    return _put_int(out, pos, ex)


@njit(inline="always", cache=True)
def _copy(out: np.ndarray, pos: int, src: np.ndarray, start: int, end: int) -> int:
    for i in range(start, end):
        out[pos] = src[i]
        pos += 1
    return pos


@njit(nogil=True, cache=True)
def _assemble_json(
    order: np.ndarray,
    name_buf: np.ndarray,
    name_off: np.ndarray,
    mant: np.ndarray,
    dexp: np.ndarray,
    neg: np.ndarray,
    head: np.ndarray,
    mid: np.ndarray,
    sep: np.ndarray,
    tail: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Row i: head name[o0] mid value[i, 0] sep name[o1] mid value[i, 1] ... tail, as Arrow string buffers."""
    n, k = order.shape
    longest = 0
    for j in range(name_off.shape[0] - 1):
        longest = max(longest, name_off[j + 1] - name_off[j])
    per_row = head.size + tail.size + k * (sep.size + mid.size + longest + 32)
    out = np.empty(n * per_row, dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int32)
    digits = np.empty(24, dtype=np.uint8)
    pos = 0
    for i in range(n):
        pos = _copy(out, pos, head, 0, head.size)
        for j in range(k):
            if j:
                pos = _copy(out, pos, sep, 0, sep.size)
            o = order[i, j]
            pos = _copy(out, pos, name_buf, name_off[o], name_off[o + 1])
            pos = _copy(out, pos, mid, 0, mid.size)
            v = i * k + j
            pos = _put_float(out, pos, mant[v], dexp[v], neg[v], digits)
        pos = _copy(out, pos, tail, 0, tail.size)
        offsets[i + 1] = pos
    return offsets, out[:pos]


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8)


_HEAD, _MID, _SEP_JSON, _TAIL = (
    _bytes(t) for t in ('[{"feature": ', ', "contribution": ', '}, {"feature": ', "}]")
)


def _top_features_column(names: Sequence[str], contributions: np.ndarray, k: int, n: int) -> pa.Array:
    """``top_features`` of every row as one Arrow string column (the same JSON text), no loop over rows:
    top-k of all rows at once, 6-digit rounding vectorized, the JSON bytes (numbers as Python's ``repr``)
    written by one Numba pass."""
    c = np.nan_to_num(np.asarray(contributions, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if c.ndim != 2 or c.shape[0] == 0 or min(k, c.shape[1]) <= 0:
        return pa.array(["[]"] * n, type=pa.string())
    rows, f = c.shape
    k = min(k, f)
    order = np.ascontiguousarray(_top_k_order(np.abs(c), k), dtype=np.int64)
    mant, dexp, neg = _sig6(np.take_along_axis(c, order, axis=1))
    name_buf, name_off = _string_buffers(pa.array([json.dumps(nm) for nm in names], type=pa.string()))
    offsets, data = _assemble_json(
        order, name_buf, name_off, mant, dexp, neg, _HEAD, _MID, _SEP_JSON, _TAIL
    )
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))


def context_json(context: dict[str, str | None]) -> str:
    return json.dumps({k: v for k, v in sorted(context.items())})


def _context_rows(contexts: Sequence[dict[str, str | None]], n: int) -> list[str]:
    """``context_json`` of each row, each distinct context serialized once (cached by its items)."""
    cache: dict[tuple[tuple[str, str | None], ...], str] = {}
    out: list[str] = []
    for c in contexts[:n]:
        key = tuple(c.items())
        text = cache.get(key)
        if text is None:
            text = cache[key] = context_json(c)
        out.append(text)
    out.extend(["{}"] * (n - len(out)))
    return out


def _const_dict(value: str, n: int) -> pa.DictionaryArray:
    indices = pa.array(np.zeros(n, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([value], pa.string()))


def build_insights(
    *,
    model: str,
    version: str,
    sha256: str,
    threshold: float,
    feature_names: Sequence[str],
    assets: Sequence[str],
    window_start_us: Sequence[int] | np.ndarray,
    window_end_us: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    contributions: np.ndarray | None,
    flags: Sequence[int] | np.ndarray,
    gated: Sequence[bool] | np.ndarray,
    contexts: Sequence[dict[str, str | None]],
    tracker: SeverityTracker,
    k: int = 3,
) -> pa.RecordBatch:
    """INSIGHTS rows for one model's scores of a tick's windows (rows in window order per asset)."""
    n = len(assets)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)[:n]
    finite = np.isfinite(s)
    gate = np.asarray(gated, dtype=np.bool_).reshape(-1) | ~finite
    levels = tracker.update_many(model, assets, s, threshold, gate)
    tops = (
        _top_features_column(feature_names, contributions, k, n)
        if contributions is not None
        else pa.array(["[]"] * n, type=pa.string())
    )
    starts = np.asarray(window_start_us, dtype=np.int64)
    ends_np = np.asarray(window_end_us, dtype=np.int64)
    ends = pa.array(ends_np, type=pa.int64()).cast(TS)
    asset_col = pa.array(list(assets), type=pa.string()).dictionary_encode()
    if asset_col.indices.type != pa.int32():
        asset_col = asset_col.cast(pa.dictionary(pa.int32(), pa.string()))
    ids = insight_id_column(model, version, asset_col, starts, ends_np)
    return pa.RecordBatch.from_arrays(
        [
            ids,
            ends,
            asset_col,
            _const_dict(model, n),
            _const_dict(version, n),
            _const_dict(sha256, n),
            pa.array(s, type=pa.float64(), mask=~finite),
            pa.array(np.full(n, float(threshold)), type=pa.float64()),
            pa.DictionaryArray.from_arrays(pa.array(levels.astype(np.int32)), _LEVELS_ARROW),
            pa.array(starts, type=pa.int64()).cast(TS),
            ends,
            tops,
            pa.array(_context_rows(contexts, n), type=pa.string()),
            pa.array(np.asarray(flags, dtype=np.int32), type=pa.int32()),
            pa.array(gate, type=pa.bool_()),
        ],
        schema=INSIGHTS,
    )
