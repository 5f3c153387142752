"""Severity with hysteresis, per (asset, model).

* the raw level of a window is ``alarm`` when score >= threshold, ``warning`` when score >= warning_ratio ×
  threshold, else ``ok``;
* the level rises only after ``hysteresis_windows`` windows in a row with a raw level above it (it rises to
  the lowest raw level of that run), and falls only after ``hysteresis_windows`` windows in a row whose
  score is below ``clear_ratio`` × the bound of the current level (then to the raw level of the last of
  them). A score that wobbles around the threshold therefore does not flap;
* a gated window (bad or stale input, see ``inference.windows.gated``) is scored and recorded, but it neither
  advances nor resets the counters, and its severity is the current level: it can never raise one.
* a window whose score is not finite is gated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from inference.insight_columns import RowCache

LEVELS = ("ok", "warning", "alarm")


@njit(nogil=True, cache=True)
def _severity_kernel(
    slots: np.ndarray,
    scores: np.ndarray,
    gated: np.ndarray,
    threshold: float,
    warning_ratio: float,
    clear_ratio: float,
    hysteresis: int,
    state: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``state`` rows: level, up_run, up_min, down_run (one column per slot)."""
    warn = warning_ratio * threshold
    level, up_run, up_min, down_run = state[0], state[1], state[2], state[3]
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
    """Severity with hysteresis per (asset, model); the state of each pair is one slot (a column of a small
    array: level, up_run, up_min, down_run). It also holds ``build_insights``' per-model cache."""

    def __init__(
        self, warning_ratio: float = 0.8, clear_ratio: float = 0.9, hysteresis_windows: int = 2
    ) -> None:
        self.warning_ratio = warning_ratio
        self.clear_ratio = clear_ratio
        self.hysteresis_windows = hysteresis_windows
        self._slots: dict[str, dict[str, int]] = {}  # model -> asset -> slot
        self._n = 0
        self._state = self._new_state(16)
        self.rows_cache: dict[str, RowCache] = {}

    @staticmethod
    def _new_state(cap: int) -> np.ndarray:
        state = np.zeros((4, cap), dtype=np.int64)
        state[2] = 2  # up_min
        return state

    def _grow(self, need: int) -> None:
        cap = self._state.shape[1]
        if need <= cap:
            return
        state = self._new_state(max(need, 2 * cap))
        state[:, :cap] = self._state
        self._state = state

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
            self._state,
            out,
        )
        return out

    def update(self, asset: str, model: str, score: float, threshold: float, gated: bool) -> str:
        score_a = np.array([score], dtype=np.float64)
        lv = self.update_many(model, [asset], score_a, threshold, np.array([gated], dtype=np.bool_))
        return LEVELS[int(lv[0])]
