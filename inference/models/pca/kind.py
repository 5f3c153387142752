"""The ``pca`` kind's fit: features standardized with the training mean and std, PCA (scikit-learn) keeping
``var`` of the variance, T² and SPE each limited by its training ``quantile``."""

from __future__ import annotations

import numpy as np

from inference.models.base import FittedModel, Progress, standardizer
from inference.models.pca.graph import pca_onnx
from inference.models.pca.settings import PcaSettings


class PcaKind:
    name = "pca"
    settings = PcaSettings

    def fit(self, x_train: np.ndarray, options: PcaSettings, progress: Progress) -> FittedModel:
        from sklearn.decomposition import PCA

        var = options.var
        mu, sd = standardizer(x_train)
        z = (x_train - mu) / sd
        pca = PCA(n_components=var if 0 < var < 1 else None, svd_solver="full",
                  random_state=options.seed).fit(z)
        comps = pca.components_
        lam = np.maximum(pca.explained_variance_, 1e-12)
        progress(
            f"pca: kept {comps.shape[0]} of {x_train.shape[1]} components "
            f"({pca.explained_variance_ratio_.sum():.3f} of the variance)"
        )
        t2, spe = _t2_spe(z, comps, lam)
        t2_lim = float(max(np.quantile(t2, options.quantile), 1e-9))
        spe_lim = float(max(np.quantile(spe, options.quantile), 1e-9))

        def score(x: np.ndarray) -> np.ndarray:
            t2_x, spe_x = _t2_spe((x - mu) / sd, comps, lam)
            return np.asarray(np.maximum(t2_x / t2_lim, spe_x / spe_lim))

        return FittedModel(
            onnx=pca_onnx(mu, sd, comps, lam, t2_lim, spe_lim),
            threshold=1.0,
            thresholds={"score": 1.0, "t2": t2_lim, "spe": spe_lim},
            extra={
                "components": int(comps.shape[0]),
                "explained_variance": float(pca.explained_variance_ratio_.sum()),
            },
            score=score,
        )


def _t2_spe(z: np.ndarray, comps: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hotelling T² = Σ t_a²/λ_a and SPE (Q) = ‖z - P Pᵀz‖² of standardized rows."""
    t = z @ comps.T
    r = z - t @ comps
    return np.sum(t * t / lam, axis=1), np.sum(r * r, axis=1)


KIND = PcaKind()
