"""The training baseline of each feature (mean and standard deviation over the training windows) and the
unit it is measured in: what a model package's manifest keeps under ``feature_stats`` so an alarm can say
"temperature mean 78.4 degC, baseline 61.2 ± 1.8".

The unit of a feature follows from its statistic: level and spread statistics (mean, rms, min, max, ptp,
std) are in the signal's unit, ``slope`` in the signal's unit per second, and the shape statistics and
spectral features (skew, kurt, crest, zcr, bands, centroid, dom_freq) have none of the signal's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SIGNAL_UNIT_STATS = frozenset({"mean", "std", "rms", "min", "max", "ptp"})


def split_feature(feature: str) -> tuple[str, str]:
    """(signal, statistic) of ``<signal>__<stat>``; a name without ``__`` is a signal of its own."""
    signal, sep, stat = feature.rpartition("__")
    return (signal, stat) if sep else (feature, "")


def feature_unit(feature: str, signal_units: Mapping[str, str]) -> str | None:
    signal, stat = split_feature(feature)
    unit = signal_units.get(signal)
    if not unit:
        return None
    if stat in SIGNAL_UNIT_STATS:
        return unit
    if stat == "slope":
        return f"{unit}/s"
    return None


def feature_stats(
    x: np.ndarray, names: Sequence[str], signal_units: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Per feature of the training matrix ``x`` (windows x features): mean, population sd and unit (when
    the signal's unit is known); only finite values count."""
    units = signal_units or {}
    out: dict[str, dict[str, Any]] = {}
    data = np.asarray(x, dtype=np.float64)
    for j, name in enumerate(names):
        col = data[:, j] if data.ndim == 2 and data.shape[0] else np.zeros(0)
        col = col[np.isfinite(col)]
        entry: dict[str, Any] = {
            "mean": float(col.mean()) if col.size else None,
            "sd": float(col.std()) if col.size else None,
        }
        unit = feature_unit(name, units)
        if unit is not None:
            entry["unit"] = unit
        out[name] = entry
    return out
