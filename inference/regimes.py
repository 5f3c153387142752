"""Context-aware baselines: features standardized per operating regime before the model.

A plant that makes several products runs each at its own level (load, current, vibration); one baseline
over all of them sees a product change as an anomaly, or grows so wide that it misses real faults. Each
window carries the MES context of its samples (``Window.context``: work order, product, batch, shift), so
the model can be trained on, and fed, features standardized by their regime's statistics:

* **training** (:func:`fit_regimes`): per value of the regime key (``product`` by default) the mean and scale
  (standard deviation) of every feature over the baseline windows of that value, and the same over all of
  them (the global statistics). A value with fewer than ``min_windows`` windows gets none (its statistics
  would be noise). The model is then fitted on the standardized features; the statistics go into the
  package manifest under ``regimes`` (:meth:`Regimes.to_manifest`);
* **scoring** (:func:`model_inputs`, the inference stage's hook): each window's features are standardized
  by the statistics of its regime; a window whose regime has none (an unseen product, or none in its
  context) is standardized by the global ones and flagged ``WINDOW_UNSEEN_REGIME`` (scored, not gated). A
  package without ``regimes`` gets its features unchanged.

The manifest's feature statistics and drift reference stay those of the raw features (build the manifest
from the unstandardized training set): explanations and drift speak in the plant's units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.core.datamodel import WINDOW_UNSEEN_REGIME
from inference.training_set import TrainingSet

MIN_WINDOWS = 20
# a regime's scale never below this share of the global one: a feature constant within one product (a
# setpoint) must not turn every small wobble into a many-sigma deviation
MIN_SCALE_SHARE = 0.05


@dataclass
class Regimes:
    key: str  # the context column naming the regime: "product", "work_order", ...
    features: list[str]
    mean: np.ndarray  # (features,) global
    scale: np.ndarray
    by_key: dict[str, tuple[np.ndarray, np.ndarray, int]]  # value -> (mean, scale, windows)

    def transform(self, x: np.ndarray, contexts: Sequence[Mapping[str, str | None]]) -> tuple[np.ndarray,
                                                                                             np.ndarray]:
        """(standardized ``x``, True where the window's regime has no statistics of its own)."""
        values = sorted(self.by_key)
        index = {v: i for i, v in enumerate(values)}
        means = np.vstack([*(self.by_key[v][0] for v in values), self.mean])
        scales = np.vstack([*(self.by_key[v][1] for v in values), self.scale])
        fallback = len(values)
        rows = np.fromiter((index.get(c.get(self.key) or "", fallback) for c in contexts), dtype=np.int64,
                           count=len(contexts))
        return (x - means[rows]) / scales[rows], rows == fallback

    def to_manifest(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "features": list(self.features),
            "global": {"mean": self.mean.tolist(), "scale": self.scale.tolist()},
            "by_key": {v: {"mean": m.tolist(), "scale": s.tolist(), "windows": n}
                       for v, (m, s, n) in sorted(self.by_key.items())},
        }

    @classmethod
    def from_manifest(cls, d: Mapping[str, Any]) -> Regimes:
        def arr(values: Any) -> np.ndarray:
            return np.asarray(values, dtype=np.float64)

        by_key = {str(v): (arr(s["mean"]), arr(s["scale"]), int(s["windows"]))
                  for v, s in d["by_key"].items()}
        return cls(str(d["key"]), list(d["features"]), arr(d["global"]["mean"]), arr(d["global"]["scale"]),
                   by_key)


def fit_regimes(tset: TrainingSet, key: str = "product", *,
                min_windows: int = MIN_WINDOWS) -> tuple[Regimes, TrainingSet]:
    """The regime statistics of ``tset`` (its windows' contexts name the regime by ``key``) and ``tset`` with
    its features standardized by them (what the model is fitted on)."""
    if len(tset.contexts) != tset.x.shape[0]:
        raise ValueError(f"the training set carries no MES context per window ({len(tset.contexts)} contexts "
                         f"for {tset.x.shape[0]} windows): featurize it with features_from_samples from "
                         f"contextualized samples")
    x = tset.x
    mean, scale = x.mean(axis=0), _scale(x.std(axis=0), None)
    labels = np.array([c.get(key) or "" for c in tset.contexts], dtype=object)
    by_key: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    for value in sorted({str(v) for v in labels if v}):
        part = x[labels == value]
        if len(part) >= min_windows:
            by_key[value] = (part.mean(axis=0), _scale(part.std(axis=0), scale), len(part))
    if not by_key:
        counts = {str(v): int((labels == v).sum()) for v in set(labels.tolist())}
        raise ValueError(f"no value of the regime key {key!r} has {min_windows} training windows (windows "
                         f"per value: {counts}); give a longer baseline or another regime key")
    regimes = Regimes(key, list(tset.feature_names), mean, scale, by_key)
    z, _ = regimes.transform(x, tset.contexts)
    return regimes, dataclasses.replace(tset, x=z)


def _scale(std: np.ndarray, global_scale: np.ndarray | None) -> np.ndarray:
    floor = 1e-9 if global_scale is None else np.maximum(MIN_SCALE_SHARE * global_scale, 1e-9)
    return np.asarray(np.maximum(std, floor), dtype=np.float64)


_parsed: dict[int, tuple[Mapping[str, Any], Regimes]] = {}


def model_inputs(manifest: Mapping[str, Any], x: np.ndarray,
                 contexts: Sequence[Mapping[str, str | None]]) -> tuple[np.ndarray, np.ndarray | int]:
    """What a package's model is fed for the windows of ``x`` (in its feature order) with ``contexts``, and
    the flag bits to add per row (``WINDOW_UNSEEN_REGIME``); a package without regimes: ``x`` and 0."""
    d = manifest.get("regimes")
    if not d:
        return x, 0
    cached = _parsed.get(id(d))
    if cached is None or cached[0] is not d:  # the manifest's own dict is kept with it: its id stays its own
        cached = _parsed[id(d)] = (d, Regimes.from_manifest(d))
    z, unseen = cached[1].transform(x, contexts)
    return z, np.where(unseen, WINDOW_UNSEEN_REGIME, 0)
