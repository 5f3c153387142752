"""Whether each signal's level is usable as a feature, decided on the training windows alone.

A signal that drifts slowly (a temperature warming up over a shift) moves the level statistics of its
windows (``mean``, ``rms``, ``min``, ``max``) out of what a short baseline saw, and a model trained on them
alarms on the drift, not on a fault. Its level-free statistics (spread, shape, slope) stay comparable.

Modes (``edge models train --levels``, ``edge models evaluate --levels``):

* ``all``: every signal keeps its level statistics (what training always did);
* ``none``: no signal does;
* ``auto``: a signal keeps them unless its level drifts within the training windows themselves: the median
  window mean of the last ``part`` of the training windows lies more than ``max_shift`` robust spreads
  (1.4826 x the median absolute deviation) of the first ``part``'s window means from their median.

The decision is the manifest's ``levels`` (mode, rule, per signal whether the level is kept and its shift);
the manifest's ``features`` is what the live stage feeds the model, so a deployed package scores live
windows on the same features it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from inference.training_set import TrainingSet

LEVEL_STATS = ("mean", "rms", "min", "max")
MODES = ("all", "auto", "none")
ROBUST_SD = 1.4826  # MAD to standard deviation for normal data


@dataclass(frozen=True)
class LevelRule:
    """``auto``'s parameters. The quarters were fixed beforehand (long enough for a median, far enough
    apart to see a drift); the shift bound was chosen on normal data only: on chunks of SKAB's anomaly-free
    file, the bound whose call on a chunk's training part best agrees with whether the level left the
    training span afterwards (``bench/quality/skab_levels_rule.py``)."""

    part: float = 0.25
    max_shift: float = 2.0

    def as_dict(self) -> dict[str, float]:
        return {"part": self.part, "max_shift": self.max_shift}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"levels mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def level_shift(means: np.ndarray, rule: LevelRule = LevelRule()) -> float:
    """How far the last part's median window mean lies from the first part's median, in the first part's
    robust spread (inf when the first part is constant and the last is not; 0 for too few windows)."""
    m = np.asarray(means, dtype=np.float64)
    m = m[np.isfinite(m)]
    q = round(len(m) * rule.part)
    if q < 2:
        return 0.0
    first, last = m[:q], m[-q:]
    centre = float(np.median(first))
    diff = abs(float(np.median(last)) - centre)
    spread = ROBUST_SD * float(np.median(np.abs(first - centre)))
    if spread <= 0.0:  # a quantized signal can hold one value for a quarter: fall back on its std
        spread = float(np.std(first))
    floor = 1e-12 * max(1.0, abs(centre))
    if spread <= floor:
        return 0.0 if diff <= floor else float("inf")
    return diff / spread


def signals_of_features(names: Sequence[str]) -> list[str]:
    """The signals of ``<signal>__<stat>`` names, in order of first appearance."""
    return list(dict.fromkeys(n.rpartition("__")[0] for n in names))


def decide(tset: TrainingSet, mode: str, rule: LevelRule = LevelRule()) -> dict[str, Any]:
    """The manifest's ``levels``: per signal of ``tset`` whether its level statistics are kept."""
    check_mode(mode)
    index = {n: i for i, n in enumerate(tset.feature_names)}
    signals: dict[str, dict[str, Any]] = {}
    for s in signals_of_features(tset.feature_names):
        col = index.get(f"{s}__mean")
        shift = level_shift(tset.x[:, col], rule) if col is not None else 0.0
        keep = mode == "all" or (mode == "auto" and shift <= rule.max_shift)
        signals[s] = {"level": keep, "shift": shift if np.isfinite(shift) else None}
    return {"mode": mode, "rule": rule.as_dict(), "level_stats": list(LEVEL_STATS), "signals": signals}


def select(
    tset: TrainingSet, stats: Sequence[str] = (), mode: str | None = None, rule: LevelRule = LevelRule()
) -> tuple[TrainingSet, dict[str, Any] | None]:
    """``tset`` with only the features of ``stats`` (empty: every statistic), less the level statistics of
    the signals whose level ``mode`` rules out (None: ``all``); and the decision (None for ``all``, where
    nothing is dropped for a level)."""
    mode = check_mode(mode or "all")
    decision = None if mode == "all" else decide(tset, mode, rule)
    wanted = set(stats)
    level_free = {s for s, d in (decision or {}).get("signals", {}).items() if not d["level"]}
    keep = []
    for i, n in enumerate(tset.feature_names):
        sig, _, stat = n.rpartition("__")
        if wanted and stat not in wanted:
            continue
        if sig in level_free and stat in LEVEL_STATS:
            continue
        keep.append(i)
    if not keep:
        raise ValueError(
            f"no feature left in the training windows (statistics {', '.join(stats) or 'all'}, "
            f"levels {mode}); keep a level-free statistic (std, ptp, slope, ...)")
    if len(keep) < len(tset.feature_names):
        tset = replace(tset, feature_names=[tset.feature_names[i] for i in keep], x=tset.x[:, keep])
    return tset, decision


def describe(decision: dict[str, Any] | None) -> str:
    """One line for the terminal: which signals lost their level statistics, and why."""
    if decision is None:
        return "levels all: every signal keeps its level statistics"
    sig = decision["signals"]
    free = [s for s, d in sig.items() if not d["level"]]
    if decision["mode"] == "none":
        return f"levels none: level-free statistics only for {len(free)} signals"

    def shift(s: str) -> str:
        v = sig[s]["shift"]
        return "inf" if v is None else f"{v:.1f}"

    rule = decision["rule"]
    head = (f"levels auto (drift > {rule['max_shift']:g} robust spreads between the first and last "
            f"{rule['part']:.0%} of the training windows): ")
    if not free:
        return head + "every signal keeps its level"
    return head + "level-free " + ", ".join(f"{s} ({shift(s)})" for s in free)
