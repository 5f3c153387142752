"""Prototype (numpy, training files only): low-parameter window models for Tennessee Eastman that keep the
window's mean AND std of each variable without a full covariance of 104 features fitted on ~400 windows.

  diag-max : max_j |z_j| over the standardized mean and std features (2 parameters a feature)
  diag-ms  : mean of z_j^2 (a diagonal Mahalanobis distance)
  pca+diag : max(PCA T2/Q ratio on the 52 window means, diag-max of the 52 window stds / its limit)

Threshold: eval_tep's blocked cross-calibration on d00.dat at TARGET; forward FAR on d00's last 1/3;
detection on the training fault files d01..d21.dat (every row faulty). No *_te file is read.
    python tep_proto.py
"""
import json

import calibrate as C
import numpy as np
import winfeat as W
from eval_tep import load

TARGET = 0.05


class Diag:
    def __init__(self, how="max"):
        self.how = how

    def fit(self, x):
        self.mu = x.mean(0)
        sd = x.std(0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)
        return self

    def score(self, x):
        z = (x - self.mu) / self.sd
        return np.abs(z).max(1) if self.how == "max" else (z * z).mean(1)


class PcaDiag:
    """PCA T2/Q on the first half of the features (the means), Diag max on the rest (the stds)."""

    def __init__(self, var=0.9):
        self.var = var

    def fit(self, x):
        n = x.shape[1] // 2
        self.n = n
        m = x[:, :n]
        self.mu = m.mean(0)
        sd = m.std(0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)
        z = (m - self.mu) / self.sd
        u, s, vt = np.linalg.svd(z, full_matrices=False)
        lam = s**2 / (len(z) - 1)
        k = int(np.searchsorted(np.cumsum(lam) / lam.sum(), self.var) + 1)
        self.P, self.lam = vt[:k], lam[:k]
        t2, q = self._tq(m)
        self.t2s, self.qs = np.quantile(t2, 0.99), np.quantile(q, 0.99)
        self.d = Diag("max").fit(x[:, n:])
        self.ds = np.quantile(self.d.score(x[:, n:]), 0.99)
        return self

    def _tq(self, m):
        z = (m - self.mu) / self.sd
        t = z @ self.P.T
        r = z - t @ self.P
        return (t * t / self.lam).sum(1), (r * r).sum(1)

    def score(self, x):
        t2, q = self._tq(x[:, :self.n])
        return np.maximum(np.maximum(t2 / self.t2s, q / self.qs), self.d.score(x[:, self.n:]) / self.ds)


MODELS = {"diag-max": lambda: Diag("max"), "diag-ms": lambda: Diag("ms"), "pca+diag": lambda: PcaDiag()}


def feats(x, win):
    f, _, _ = W.features(x, win, 1, dt=3.0, which=("mean", "std"))
    # the product's feature order is per signal; here: all means, then all stds
    n = x.shape[1]
    return np.concatenate([f[:, 0::2][:, :n], f[:, 1::2][:, :n]], axis=1) if f.shape[1] == 2 * n else f


def main():
    x00 = load("d00")
    tf = {i: load(f"d{i:02d}") for i in range(1, 22)}
    out = []
    for name, make in MODELS.items():
        for win in (3, 5, 10, 20):
            f00 = feats(x00, win)
            m, thr, rate, _ = C.cross_calibrate(make, f00, TARGET, 4, gap=win)
            fwd = C.forward_check(make, f00, TARGET, 4, gap=win)
            dr = {i: float(C.alarms(m.score(feats(x, win)), thr).mean()) for i, x in tf.items()}
            r = {"model": name, "win": win, "forward_far": fwd, "cal_rate": rate,
                 "train_faults_detected": sum(v >= 0.5 for v in dr.values()),
                 "train_mean_dr": float(np.mean(list(dr.values()))),
                 "missed": [i for i, v in dr.items() if v < 0.5]}
            print(json.dumps(r), flush=True)
            out.append(r)
    json.dump(out, open("tep_proto.json", "w"), indent=1)


if __name__ == "__main__":
    main()
