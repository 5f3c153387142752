"""The ``knn`` kind's fit: features standardized with the training mean and std, the standardized training
windows (a seeded subsample of ``max_reference`` of them when there are more) kept as the reference set.
The threshold is left to ``inference.train.fit`` (``threshold=None``)."""

from __future__ import annotations

import numpy as np

from inference.models.base import FittedModel, Progress, standardizer
from inference.models.knn.graph import knn_onnx
from inference.models.knn.settings import KnnSettings


class KnnKind:
    name = "knn"
    settings = KnnSettings

    def fit(self, x_train: np.ndarray, options: KnnSettings, progress: Progress) -> FittedModel:
        x = np.asarray(x_train, dtype=np.float64)
        mu, sd = standardizer(x)
        ref = (x - mu) / sd
        if len(ref) > options.max_reference:
            idx = np.random.default_rng(options.seed).choice(len(ref), options.max_reference, replace=False)
            ref = ref[np.sort(idx)]
        k = min(options.k, len(ref))
        progress(f"knn: {len(ref)} reference windows of {x.shape[1]} features, k = {k}")

        def score(x_new: np.ndarray) -> np.ndarray:
            return knn_score((np.asarray(x_new, dtype=np.float64) - mu) / sd, ref, k)[0]

        return FittedModel(
            onnx=knn_onnx(mu, sd, ref, k),
            threshold=None,
            thresholds={},
            extra={"reference_windows": len(ref), "k": k},
            score=score,
        )


def knn_score(z: np.ndarray, ref: np.ndarray, k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Mean distance of each standardized row to its ``k`` nearest reference rows, and the per-feature
    squared deviation from the mean of those k (the graph's ``score`` and ``contributions``)."""
    scores = np.empty(len(z))
    contrib = np.empty_like(z)
    ref_sq = (ref * ref).sum(axis=1)
    for lo in range(0, len(z), chunk):
        zc = z[lo : lo + chunk]
        d2 = np.maximum((zc * zc).sum(axis=1)[:, None] - 2.0 * zc @ ref.T + ref_sq[None, :], 0.0)
        nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]
        scores[lo : lo + chunk] = np.sqrt(np.take_along_axis(d2, nearest, axis=1)).mean(axis=1)
        contrib[lo : lo + chunk] = (zc - ref[nearest].mean(axis=1)) ** 2
    return scores, contrib


KIND = KnnKind()
