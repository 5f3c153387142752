"""The feature part of an alarm's explanation, computed when the window is scored: the features that led
the score, each with its value, its training baseline (``feature_stats`` of the model's manifest) and the
deviation in the signal's own unit, plus a one-line summary.

Only rows whose severity is raised (warning, alarm) get one: an explanation is for a decision, and an
``ok`` row needs none. The JSON (``explanation`` column, documented in docs/explanations.md)::

    {"version": 1, "summary": "temperature mean 78.4 degC, baseline 61.2 ± 1.8 (+17.2 degC, 9.56 sd)",
     "features": [{"feature": "temperature__mean", "signal": "temperature", "stat": "mean", "value": 78.4,
                   "unit": "degC", "baseline_mean": 61.2, "baseline_sd": 1.8, "deviation": 17.2, "z": 9.6,
                   "contribution": 0.81}, ...],
     "signals": {"temperature": {"mean": 61.2, "sd": 1.8, "unit": "degC"}, ...}}

``signals`` holds the training level (the ``__mean`` feature's baseline) of every signal the model knows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from inference.explain.baseline import split_feature

EXPLANATION_VERSION = 1
EXPLANATION_COLUMN = "explanation"
RAISED = pa.array(["warning", "alarm"], type=pa.string())


def short(value: float) -> str:
    """A number as an engineer reads it: about three significant digits, never an exponent above 1e-3."""
    a = abs(value)
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    if a >= 1e-3 or a == 0:
        return f"{value:.3f}".rstrip("0").rstrip(".") or "0"
    return f"{value:.2g}"


def plus_minus(mean: float, sd: float) -> str:
    """"61.2 ± 1.8": the spread with as many decimals as the level shows."""
    level = short(mean)
    decimals = len(level.partition(".")[2])
    spread = f"{sd:.{decimals}f}" if sd == 0 or sd >= 10.0**-decimals else short(sd)
    return f"{level} ± {spread}"


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(float(v)) else None


def describe(item: Mapping[str, Any]) -> str:
    """"temperature mean 78.4 degC, baseline 61.2 ± 1.8 (+17.2 degC, 9.6 sd)" of one explained feature."""
    unit = f" {item['unit']}" if item.get("unit") else ""
    text = f"{item['signal']} {item['stat'] or 'value'} {short(item['value'])}{unit}".replace("  ", " ")
    mean, sd = item.get("baseline_mean"), item.get("baseline_sd")
    if mean is None:
        return text + " (no training baseline in the model package)"
    text += f", baseline {plus_minus(mean, sd or 0.0)}"
    dev, z = item.get("deviation"), item.get("z")
    if dev is not None:
        sign = "+" if dev >= 0 else "-"
        text += f" ({sign}{short(abs(dev))}{unit}" + (f", {short(z)} sd)" if z is not None else ")")
    return text


@dataclass(frozen=True)
class Baseline:
    """A model's features with their training mean and sd as arrays (NaN where unknown), once per batch."""

    names: tuple[str, ...]
    stats: Mapping[str, Mapping[str, Any]]
    mean: np.ndarray
    sd: np.ndarray  # NaN where unknown or zero: no z then

    @classmethod
    def of(cls, names: Sequence[str], stats: Mapping[str, Mapping[str, Any]]) -> Baseline:
        def get(name: str, key: str) -> float:
            v = _finite((stats.get(name) or {}).get(key))
            return math.nan if v is None else v

        mean = np.array([get(nm, "mean") for nm in names], dtype=np.float64)
        sd = np.array([get(nm, "sd") for nm in names], dtype=np.float64)
        sd[(sd == 0) | np.isnan(mean)] = math.nan
        return cls(tuple(names), stats, mean, sd)

    def z(self, values: np.ndarray) -> np.ndarray:
        """(values - mean) / sd, 0 where there is no baseline (rows of features, or one row)."""
        z: np.ndarray = np.nan_to_num((np.asarray(values, dtype=np.float64) - self.mean) / self.sd, nan=0.0,
                                      posinf=0.0, neginf=0.0)
        return z

    def item(self, j: int, value: float, z: float, contribution: float | None) -> dict[str, Any]:
        name = self.names[j]
        signal, stat = split_feature(name)
        mean, sd = self.mean[j], self.sd[j]
        item: dict[str, Any] = {"feature": name, "signal": signal, "stat": stat, "value": round(value, 6),
                                "unit": (self.stats.get(name) or {}).get("unit"), "baseline_mean": None,
                                "baseline_sd": None, "deviation": None, "z": None, "contribution": None}
        if not math.isnan(mean):
            item["baseline_mean"] = round(float(mean), 6)
            item["baseline_sd"] = 0.0 if math.isnan(sd) else round(float(sd), 6)
            item["deviation"] = round(value - float(mean), 6)
            item["z"] = None if math.isnan(sd) else round(z, 3)
        if contribution is not None:
            item["contribution"] = round(contribution, 6)
        return item


def _leading(key: np.ndarray, k: int) -> np.ndarray:
    """Per row the indices of the ``k`` largest keys, largest first, ties in index order."""
    return np.argsort(-key, axis=-1, kind="stable")[..., :k]


def _document(base: Baseline, values: list[float], z: list[float], contributions: list[float] | None,
              order: list[int]) -> dict[str, Any]:
    """One row's document from plain lists (finite contributions): numpy scalars cost more than the rest."""
    items = [base.item(j, values[j], z[j], None if contributions is None else contributions[j])
             for j in order]
    summary = "; ".join(describe(i) for i in items[:2])
    return {"version": EXPLANATION_VERSION, "summary": summary, "features": items}


def explain_row(
    names: Sequence[str], values: np.ndarray, contributions: np.ndarray | None,
    stats: Mapping[str, Mapping[str, Any]], k: int,
) -> dict[str, Any]:
    """The explanation of one window: its ``k`` leading features (largest |contribution|; without
    contributions, largest |z| against the baseline), largest first. The one-row reference of
    :func:`explain_batch`."""
    base = Baseline.of(names, stats)
    z = base.z(values)
    c = None if contributions is None else np.nan_to_num(np.asarray(contributions, dtype=np.float64))
    order = _leading(np.abs(c) if c is not None else np.abs(z), k)
    doc = _document(base, np.asarray(values, dtype=np.float64).tolist(), z.tolist(),
                    None if c is None else c.tolist(), order.tolist())
    doc["signals"] = levels(stats)
    return doc


def levels(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The training level of every signal (its ``__mean`` feature's mean and sd, unit): the band a view
    draws the window's samples against."""
    out: dict[str, dict[str, Any]] = {}
    for name, s in stats.items():
        signal, stat = split_feature(name)
        mean, sd = _finite(s.get("mean")), _finite(s.get("sd"))
        if stat == "mean" and mean is not None:
            out[signal] = {"mean": round(mean, 6), "sd": round(sd or 0.0, 6), "unit": s.get("unit")}
    return out


def explain_batch(
    batch: pa.RecordBatch, names: Sequence[str], x: np.ndarray, contributions: np.ndarray | None,
    stats: Mapping[str, Mapping[str, Any]], k: int = 3,
) -> pa.RecordBatch:
    """``batch`` (one model's insight rows, row i scored on ``x[i]``) with an ``explanation`` JSON column:
    the explanation on warning and alarm rows, null on the others."""
    n = batch.num_rows
    raised = pc.is_in(batch.column("severity").cast(pa.string()), value_set=RAISED)
    rows = np.flatnonzero(np.asarray(raised.to_numpy(zero_copy_only=False), dtype=bool))
    texts: list[str | None] = [None] * n
    c = None
    if contributions is not None:
        c2 = np.asarray(contributions, dtype=np.float64)
        c = c2 if c2.ndim == 2 and c2.shape[0] >= n and c2.shape[1] == len(names) else None
    if rows.size:
        base = Baseline.of(names, stats)
        xr = np.asarray(x, dtype=np.float64)[rows]
        z = base.z(xr)
        cr = None if c is None else np.nan_to_num(c[rows])
        order = _leading(np.abs(cr) if cr is not None else np.abs(z), k).tolist()
        xl, zl, cl = xr.tolist(), z.tolist(), None if cr is None else cr.tolist()
        # the training levels are the same for every row: serialized once, spliced into each document
        tail = ', "signals": ' + json.dumps(levels(stats), ensure_ascii=False) + "}"
        for r, i in enumerate(rows):
            doc = _document(base, xl[r], zl[r], None if cl is None else cl[r], order[r])
            texts[int(i)] = json.dumps(doc, ensure_ascii=False)[:-1] + tail
    column = pa.array(texts, type=pa.string())
    at = batch.schema.get_field_index(EXPLANATION_COLUMN)
    if at >= 0:
        return batch.set_column(at, EXPLANATION_COLUMN, column)
    return batch.append_column(EXPLANATION_COLUMN, column)


def explained(
    scored: tuple[str, str, pa.RecordBatch], manifest: Mapping[str, Any], x: np.ndarray,
    contributions: Any, k: int = 3,
) -> tuple[str, str, pa.RecordBatch]:
    """The stage's (model, version, insights) with the explanation column, from the package's manifest
    (``features`` and ``feature_stats``) and the model's inputs and contributions of those rows."""
    model, version, batch = scored
    names = [str(f) for f in manifest.get("features", [])]
    stats = manifest.get("feature_stats") or {}
    return model, version, explain_batch(batch, names, np.asarray(x), contributions, stats, k)
