"""A simple drift monitor: the live score distribution against the training one (the fallback for packages
without a per-feature reference; ``inference.feature_drift`` is the full one).

The manifest's ``metrics.train_score_deciles`` cut the score axis into 10 bins that each held 10 % of the
training windows. Every ``every`` live (ungated) scores, the population stability index over the last ``size``
scores is PSI = Σ (p_i - 0.1)·ln(p_i / 0.1). PSI above ``raise_at`` (0.25, the usual "significant shift")
starts a drift episode and returns an event; it ends, with another event, once PSI falls below ``clear_at``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def psi(scores: np.ndarray, deciles: Sequence[float]) -> float:
    edges = np.asarray(deciles, dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, scores, side="right"), minlength=len(edges) + 1)
    p = np.maximum(counts / max(1, len(scores)), 1e-4)
    q = 1.0 / (len(edges) + 1)
    return float(np.sum((p - q) * np.log(p / q)))


@dataclass
class DriftMonitor:
    model: str
    deciles: Sequence[float]
    size: int = 500
    every: int = 100
    raise_at: float = 0.25
    clear_at: float = 0.1
    drifting: bool = False
    last_psi: float = 0.0
    _buf: deque[float] = field(default_factory=deque)
    _since: int = 0

    def observe(
        self, x: np.ndarray, features: Sequence[str], scores: np.ndarray, gated: np.ndarray,
        assets: Sequence[str],
    ) -> list[dict[str, Any]]:
        """The per-feature monitor's call (``inference.feature_drift``): here the ungated scores only."""
        return self.update(np.asarray(scores)[~np.asarray(gated, dtype=bool)])

    def update(self, scores: np.ndarray) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if len(self.deciles) < 2:
            return events
        for s in np.asarray(scores, dtype=np.float64):
            if not np.isfinite(s):
                continue
            self._buf.append(float(s))
            if len(self._buf) > self.size:
                self._buf.popleft()
            self._since += 1
            if self._since >= self.every and len(self._buf) >= self.every:
                self._since = 0
                self.last_psi = psi(np.fromiter(self._buf, dtype=np.float64), self.deciles)
                if not self.drifting and self.last_psi > self.raise_at:
                    self.drifting = True
                    events.append(
                        {
                            "model": self.model,
                            "psi": self.last_psi,
                            "drift": True,
                            "message": f"score distribution of {self.model} shifted (PSI "
                            f"{self.last_psi:.2f} > {self.raise_at})",
                        }
                    )
                elif self.drifting and self.last_psi < self.clear_at:
                    self.drifting = False
                    events.append(
                        {
                            "model": self.model,
                            "psi": self.last_psi,
                            "drift": False,
                            "message": f"score distribution of {self.model} back to training "
                            f"(PSI {self.last_psi:.2f})",
                        }
                    )
        return events
