"""Drift per feature: the live model inputs against the training distribution of each feature, the score
distribution against the training scores, and the share of gated windows.

Reference (``manifest["reference"]``, written at training by ``feature_reference``): the deciles of every
feature over the training windows and the training share in each decile bin. Every ``every`` live windows,
over the last ``size`` ungated ones:

* PSI per feature over its 10 decile bins (Σ (p_i - q_i)·ln(p_i / q_i), q_i the training share of bin i:
  0.1 for a continuous feature, not for a discrete one such as a zero-crossing count), and the
  Kolmogorov-Smirnov distance to the training distribution at the decile edges (max_k |F_live - F_train|);
* PSI of the score over ``metrics.train_score_deciles``;
* the share of gated windows among the last ``size`` windows.

A drift episode starts when a feature's PSI or the score's PSI exceeds ``raise_at`` (0.25, the usual
"significant shift"), or the gated share exceeds ``max_gated_share``; it ends once all are back below
``clear_at`` (and the gated share below its bound). Each start and end is one event naming the ``top``
features that moved most (by PSI).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.drift import psi

DECILES = np.linspace(0.1, 0.9, 9)


def bin_shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of the rows of ``x`` in each of the 10 bins the 9 ``edges`` of each column cut (10 x columns)."""
    n, k = x.shape
    out = np.empty((10, k))
    for j in range(k):
        out[:, j] = np.bincount(np.searchsorted(edges[:, j], x[:, j], side="right"), minlength=10) / max(1, n)
    return out


def feature_reference(x: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """The manifest's drift reference: per feature, the deciles of the training windows and the share of
    them in each decile bin (0.1 each for a continuous feature; not for a discrete one, with ties)."""
    x = np.asarray(x, dtype=np.float64)
    q = np.quantile(x, DECILES, axis=0) if len(x) else np.zeros((9, len(names)))
    shares = bin_shares(x, q) if len(x) else np.full((10, len(names)), 0.1)
    return {"deciles": {n: [float(v) for v in q[:, j]] for j, n in enumerate(names)},
            "shares": {n: [float(v) for v in shares[:, j]] for j, n in enumerate(names)}, "windows": len(x)}


def psi_matrix(x: np.ndarray, edges: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """PSI of each column of ``x`` over its decile ``edges`` (9 x columns) against the training shares
    ``expected`` (10 x columns)."""
    p = np.maximum(bin_shares(x, edges), 1e-4)
    q = np.maximum(expected, 1e-4)
    return np.asarray(np.sum((p - q) * np.log(p / q), axis=0))


def ks_at_deciles(x: np.ndarray, edges: np.ndarray, expected: np.ndarray | None = None) -> np.ndarray:
    """max_k |F_live(q_k) - F_train(q_k)| per column: the KS distance seen at the training deciles."""
    live = (x[:, None, :] <= edges[None, :, :]).mean(axis=0)  # (9, columns)
    train = DECILES[:, None] if expected is None else np.cumsum(expected, axis=0)[:9]
    return np.asarray(np.abs(live - train).max(axis=0))


@dataclass
class FeatureDriftMonitor:
    model: str
    features: list[str]
    edges: np.ndarray  # (9, usable features)
    expected: np.ndarray  # (10, usable features): training shares per bin
    score_deciles: Sequence[float] = ()
    size: int = 500
    every: int = 100
    raise_at: float = 0.25
    clear_at: float = 0.1
    max_gated_share: float = 0.2
    top: int = 3
    drifting: bool = False
    last: dict[str, Any] = field(default_factory=dict)
    _x: deque[np.ndarray] = field(default_factory=deque)
    _scores: deque[float] = field(default_factory=deque)
    _gated: deque[bool] = field(default_factory=deque)
    _assets: deque[str] = field(default_factory=deque)
    _since: int = 0

    @classmethod
    def from_manifest(cls, model: str, manifest: dict[str, Any], **kw: Any) -> FeatureDriftMonitor | None:
        ref = (manifest.get("reference") or {}).get("deciles") or {}
        names = [f for f in manifest.get("features", []) if f in ref and np.ptp(ref[f]) > 0]
        if not names:
            return None  # no reference (an older package) or only constant features
        edges = np.array([ref[f] for f in names], dtype=np.float64).T
        shares = (manifest.get("reference") or {}).get("shares") or {}
        expected = np.array([shares.get(f, [0.1] * 10) for f in names], dtype=np.float64).T
        deciles = (manifest.get("metrics") or {}).get("train_score_deciles") or []
        return cls(model, names, edges, expected, deciles, **kw)

    def observe(
        self, x: np.ndarray, features: Sequence[str], scores: np.ndarray, gated: np.ndarray,
        assets: Sequence[str],
    ) -> list[dict[str, Any]]:
        """Add a tick's windows (model inputs ``x`` with columns ``features``); the episode events."""
        col = {f: j for j, f in enumerate(features)}
        take = np.array([col[f] for f in self.features], dtype=np.int64)
        xs = np.asarray(x, dtype=np.float64)[:, take] if len(x) else np.zeros((0, len(take)))
        events: list[dict[str, Any]] = []
        for i in range(len(scores)):
            self._gated.append(bool(gated[i]))
            self._assets.append(assets[i])
            if not gated[i] and np.isfinite(scores[i]):
                self._x.append(xs[i])
                self._scores.append(float(scores[i]))
            for buf in (self._x, self._scores, self._gated, self._assets):
                while len(buf) > self.size:
                    buf.popleft()
            self._since += 1
            if self._since >= self.every and len(self._x) >= self.every:
                self._since = 0
                ev = self._check()
                if ev is not None:
                    events.append(ev)
        return events

    def _check(self) -> dict[str, Any] | None:
        x = np.asarray(self._x)
        fpsi = psi_matrix(x, self.edges, self.expected)
        ks = ks_at_deciles(x, self.edges, self.expected)
        scores = np.fromiter(self._scores, dtype=np.float64)
        spsi = psi(scores, self.score_deciles) if len(self.score_deciles) >= 2 else 0.0
        gshare = float(np.mean(self._gated)) if self._gated else 0.0
        order = np.argsort(-fpsi)[: self.top]
        moved = [{"feature": self.features[j], "psi": float(fpsi[j]), "ks": float(ks[j])} for j in order]
        worst = max(float(fpsi.max(initial=0.0)), spsi)
        self.last = {"feature_psi_max": float(fpsi.max(initial=0.0)), "score_psi": spsi,
                     "gated_share": gshare, "features": moved}
        start = worst > self.raise_at or gshare > self.max_gated_share
        end = worst < self.clear_at and gshare <= self.max_gated_share
        if (start and not self.drifting) or (end and self.drifting):
            self.drifting = start
        else:
            return None  # no change: still drifting, or still quiet
        assets = sorted(set(self._assets))
        names = ", ".join(f"{m['feature']} (PSI {m['psi']:.2f})" for m in moved)
        msg = (f"drift of {self.model} started: {names}; score PSI {spsi:.2f}, gated {gshare:.0%}" if start
               else f"drift of {self.model} ended: inputs back to training (largest PSI {worst:.2f})")
        return {"model": self.model, "drift": start, "message": msg, "psi": spsi, **self.last,
                "assets": assets, "asset": assets[0] if len(assets) == 1 else None}


def drift_monitor(model: Any) -> Any:
    """The drift monitor of a deployed model: per feature where its manifest has a reference, else the
    score-only ``DriftMonitor``. Both take ``observe(x, features, scores, gated, assets)``."""
    from inference.drift import DriftMonitor

    manifest = model.package.manifest
    per_feature = FeatureDriftMonitor.from_manifest(model.name, manifest)
    if per_feature is not None:
        return per_feature
    return DriftMonitor(model.name, manifest.get("metrics", {}).get("train_score_deciles", []))
