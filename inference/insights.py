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
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from edge.datamodel import DICT_STR, INSIGHTS, TS

LEVELS = ("ok", "warning", "alarm")


def insight_id(model: str, version: str, asset: str, window_start_us: int, window_end_us: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in (model, version, asset, str(int(window_start_us)), str(int(window_end_us))):
        h.update(part.encode())
        h.update(b"\x1f")
    return h.hexdigest()


@dataclass
class _State:
    level: int = 0
    up_run: int = 0
    up_min: int = 2
    down_run: int = 0


@dataclass
class SeverityTracker:
    warning_ratio: float = 0.8
    clear_ratio: float = 0.9
    hysteresis_windows: int = 2
    states: dict[tuple[str, str], _State] = field(default_factory=dict)

    def raw_level(self, score: float, threshold: float) -> int:
        if score >= threshold:
            return 2
        if score >= self.warning_ratio * threshold:
            return 1
        return 0

    def update(self, asset: str, model: str, score: float, threshold: float, gated: bool) -> str:
        st = self.states.setdefault((asset, model), _State())
        if gated or not math.isfinite(score):
            return LEVELS[st.level]
        raw = self.raw_level(score, threshold)
        # rising
        if raw > st.level:
            st.up_run += 1
            st.up_min = min(st.up_min, raw) if st.up_run > 1 else raw
            if st.up_run >= self.hysteresis_windows:
                st.level = st.up_min
                st.up_run = 0
        else:
            st.up_run = 0
        # falling
        if st.level > 0:
            bound = threshold if st.level == 2 else self.warning_ratio * threshold
            if score < self.clear_ratio * bound:
                st.down_run += 1
                if st.down_run >= self.hysteresis_windows:
                    st.level = min(raw, st.level - 1)
                    st.down_run = 0
            else:
                st.down_run = 0
        else:
            st.down_run = 0
        return LEVELS[st.level]


def top_features(names: Sequence[str], contributions: np.ndarray, k: int) -> str:
    """JSON list of the k features with the largest absolute contribution, largest first."""
    c = np.nan_to_num(np.asarray(contributions, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    order = np.argsort(-np.abs(c), kind="stable")[:k]
    return json.dumps([{"feature": names[i], "contribution": float(f"{c[i]:.6g}")} for i in order])


def _top_features_rows(names: Sequence[str], contributions: np.ndarray, k: int) -> list[str]:
    """``top_features`` for every row at once (same JSON text, vectorized ordering)."""
    c = np.nan_to_num(np.asarray(contributions, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if c.ndim != 2 or c.shape[0] == 0:
        return ["[]"] * (c.shape[0] if c.ndim == 2 else 0)
    order = np.argsort(-np.abs(c), axis=1, kind="stable")[:, :k]
    quoted = [json.dumps(n) for n in names]
    out = []
    for i in range(c.shape[0]):
        row = c[i]
        items = (f'{{"feature": {quoted[j]}, "contribution": {float(f"{row[j]:.6g}")!r}}}'
                 for j in order[i])
        out.append("[" + ", ".join(items) + "]")
    return out


def context_json(context: dict[str, str | None]) -> str:
    return json.dumps({k: v for k, v in sorted(context.items())})


def build_insights(
    *,
    model: str,
    version: str,
    sha256: str,
    threshold: float,
    feature_names: Sequence[str],
    assets: Sequence[str],
    window_start_us: Sequence[int],
    window_end_us: Sequence[int],
    scores: np.ndarray,
    contributions: np.ndarray | None,
    flags: Sequence[int],
    gated: Sequence[bool],
    contexts: Sequence[dict[str, str | None]],
    tracker: SeverityTracker,
    k: int = 3,
) -> pa.RecordBatch:
    """INSIGHTS rows for one model's scores of a tick's windows (rows in window order per asset)."""
    n = len(assets)
    ids, sev, tops, ctx, gate = [], [], [], [], []
    score_col: list[float | None] = []
    tops = _top_features_rows(feature_names, contributions, k) if contributions is not None else ["[]"] * n
    ctx_cache: dict[tuple[tuple[str, str | None], ...], str] = {}
    for i in range(n):
        s = float(scores[i])
        g = bool(gated[i]) or not math.isfinite(s)
        gate.append(g)
        score_col.append(s if math.isfinite(s) else None)
        ids.append(insight_id(model, version, assets[i], window_start_us[i], window_end_us[i]))
        sev.append(tracker.update(assets[i], model, s, threshold, g))
        if i < len(contexts):
            key = tuple(sorted(contexts[i].items()))
            c = ctx_cache.get(key)
            if c is None:
                c = ctx_cache[key] = context_json(contexts[i])
            ctx.append(c)
        else:
            ctx.append("{}")

    def dict_col(values: Sequence[str]) -> pa.Array:
        return pa.array(list(values), type=pa.string()).dictionary_encode().cast(DICT_STR)

    ends = pa.array(np.asarray(window_end_us, dtype=np.int64), type=pa.int64()).cast(TS)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(ids, type=pa.string()),
            ends,
            dict_col(assets),
            dict_col([model] * n),
            dict_col([version] * n),
            dict_col([sha256] * n),
            pa.array(score_col, type=pa.float64()),
            pa.array([float(threshold)] * n, type=pa.float64()),
            dict_col(sev),
            pa.array(np.asarray(window_start_us, dtype=np.int64), type=pa.int64()).cast(TS),
            ends,
            pa.array(tops, type=pa.string()),
            pa.array(ctx, type=pa.string()),
            pa.array(np.asarray(flags, dtype=np.int32), type=pa.int32()),
            pa.array(gate, type=pa.bool_()),
        ],
        schema=INSIGHTS,
    )
