"""Data-quality findings on closed windows, raised as ``data_quality`` events (not as a model's score).

A model is trained on what good data looks like; a sensor that stopped or froze is not an anomaly of the
process but of the data, and the windower gates such windows (they never raise a model's level). This
watch says what happened instead, per equipment and signal, on the window's grid (the windower's: a cell
holds a good value for at most ``max_hold_s``, else it is empty):

* **gap**: the signal has an empty cell where another signal of the same equipment holds a value: the tag
  delivered nothing good for longer than ``max_hold_s`` while its equipment kept reporting (a dropout; also
  an OPC-UA sensor stuck at one value, as a server reports data *changes* only). Cells before a signal's
  first value ever are not a gap (a tag that starts late), and an equipment gone quiet as a whole is not a
  gap of one tag (a connection matter, with its own events);
* **flatline**: every cell of the window holds a value and all are the same: a sensor repeating one value.

A finding is an episode per (equipment, signal): one event with ``state = "raised"`` when a window first
shows it (the data is as it is: no hysteresis), one with ``state = "cleared"`` at the first window without
it. The event's ``detail``: ``asset``, ``signal``, ``rule``, ``state``, ``window_start``, ``window_end`` (ISO
8601 UTC of the window that raised or cleared it) and, for a gap, ``empty_s`` (seconds of empty cells).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from edge.core.datamodel import EventKind
from inference.windows import Window

Event = tuple[str, str, dict[str, Any]]
RULES: tuple[str | None, ...] = (None, "gap", "flatline")  # the rule codes of QualityWatch._rules

RULE_TEXT = {
    "gap": "sent no good value for longer than the hold time while the equipment's other signals reported",
    "flatline": "repeated one value for the whole window",
}


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class QualityWatch:
    """Gap and flatline episodes per (equipment, signal); :meth:`update` takes a tick's windows in order."""

    def __init__(self, grid_hz: float) -> None:
        self.cell_s = 1.0 / grid_hz
        self.active: dict[tuple[str, str], str] = {}  # (asset, signal) -> rule of the open episode
        self.active_assets: dict[str, int] = {}  # asset -> open episodes: windows of others need no look
        self.seen: dict[str, set[str]] = {}  # asset -> signals that have had a value (later empties are gaps)

    def update(self, windows: Sequence[Window]) -> list[Event]:
        out: list[Event] = []
        codes = self._rules(windows)
        for w, code in zip(windows, codes, strict=True):
            if not code.any() and w.asset not in self.active_assets:
                continue  # nothing found, nothing open: the common case
            for i, signal in enumerate(w.signals):
                key = (w.asset, signal)
                rule, before = RULES[int(code[i])], self.active.get(key)
                if rule == before:
                    continue
                if before is not None:
                    del self.active[key]
                    self._count(w.asset, -1)
                    out.append(self._event(w, signal, before, "cleared", 0.0))
                if rule is not None:
                    self.active[key] = rule
                    self._count(w.asset, 1)
                    out.append(self._event(w, signal, rule, "raised", self._empty_s(w, i)))
        return out

    def _count(self, asset: str, delta: int) -> None:
        n = self.active_assets.get(asset, 0) + delta
        if n:
            self.active_assets[asset] = n
        else:
            self.active_assets.pop(asset, None)

    def _rules(self, windows: Sequence[Window]) -> list[np.ndarray]:
        """Per window, a rule code per signal (an index into ``RULES``), computed for all windows of one
        grid shape at once."""
        out: list[np.ndarray] = [np.zeros(0, np.int8)] * len(windows)
        shapes: dict[tuple[int, ...], list[int]] = {}
        for j, w in enumerate(windows):
            shapes.setdefault(w.grid.shape, []).append(j)
        for shape, idx in shapes.items():
            if not shape[0] * shape[1]:
                for j in idx:
                    out[j] = np.zeros(shape[0], np.int8)
                continue
            grid = np.stack([windows[j].grid for j in idx])  # (windows, signals, cells)
            value = np.isfinite(grid)
            others = value.sum(axis=1, keepdims=True) - value  # other signals with a value, per cell
            empty = ~value & (others > 0)
            for k, j in enumerate(idx):
                self._mask_before_first_value(windows[j], value[k], empty[k])
            gap = empty.any(axis=2)
            flat = value.all(axis=2) & (np.ptp(grid, axis=2) == 0.0)
            code = np.where(gap, 1, np.where(flat, 2, 0)).astype(np.int8)
            for k, j in enumerate(idx):
                out[j] = code[k]
        return out

    def _mask_before_first_value(self, w: Window, value: np.ndarray, empty: np.ndarray) -> None:
        """Cells before a signal's first value ever are no gap: it started late, it did not stop."""
        seen = self.seen.setdefault(w.asset, set())
        if len(seen) == len(w.signals):
            return
        for i, signal in enumerate(w.signals):
            if signal in seen:
                continue
            first = np.flatnonzero(value[i])
            empty[i, : first[0] if first.size else None] = False
            if first.size:
                seen.add(signal)

    def _empty_s(self, w: Window, i: int) -> float:
        return round(float(np.count_nonzero(~np.isfinite(w.grid[i]))) * self.cell_s, 3)

    def _event(self, w: Window, signal: str, rule: str, state: str, empty_s: float) -> Event:
        detail: dict[str, Any] = {"asset": w.asset, "signal": signal, "rule": rule, "state": state,
                                  "window_start": _iso(w.start_us), "window_end": _iso(w.end_us)}
        if state == "raised" and rule == "gap":
            detail["empty_s"] = empty_s
        what = RULE_TEXT[rule] if state == "raised" else "no longer seen"
        return str(EventKind.DATA_QUALITY), f"{signal}: {rule} {state}: {what}", detail
