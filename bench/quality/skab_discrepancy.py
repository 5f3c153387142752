"""Why the SKAB prototype (proto_skab.py) and ``edge models evaluate`` disagree on the same all-level
configuration (PCA, 5-row windows every row, mean+std of every signal, target 0.005).

    python skab_discrepancy.py > skab_discrepancy.out

Starts from the prototype and moves it one product convention at a time, printing the SKAB figures of each
step (cumulative):

  proto            the prototype as it is (fits on all 400 training rows, PCA var 0.9, T2 and Q scaled by
                   their pooled held-out 99 % quantiles)
  var=0.95         the product's default share of variance kept (``--var``)
  holdout=0.2      the product keeps the last 20 % of the training windows for ``edge models validate``:
                   fit and cross-calibration see only the first 80 %
  train-quantile   the product's PCA scales T2 and SPE by their 99 % quantile on the windows it was fitted
                   on (in sample), not on held-out ones; the threshold is then cross-calibrated as before

The remaining difference is the time grid: the product windows in event time (a window every second,
5 s long, a 2 s step between rows bridged by holding the last value for one row period), the prototype in
rows.
"""
import json

import calibrate as C
import detectors as D
import proto_skab as P


class TrainQuantilePCA:
    """PCA T2+Q scaled as the product's ``pca`` kind: training (in-sample) quantile of each part. Without
    ``parts`` so the prototype's cross-calibration keeps these scales."""

    def __init__(self, var: float, q: float = 0.99):
        self.m = D.PCAT2Q(var=var)
        self.q = q

    def fit(self, x):
        self.m.fit(x)
        self.m.set_scales(x, self.q)
        return self

    def score(self, x):
        return self.m.score(x)


def run(var: float, holdout: float, train_quantile: bool) -> dict:
    cfg = {"family": "all_level", "win": 5, "model": "pca", "hyst": 2}
    make = (lambda: TrainQuantilePCA(var)) if train_quantile else (lambda: D.PCAT2Q(var=var))
    trues, preds = [], []
    for f in P.files():
        x, y = P.load(f)
        feats = P.feats(x[:P.N_TRAIN], cfg)
        n_fit = max(10, round(len(feats) * (1 - holdout)))
        model, thr = C.cross_calibrate(make, feats[:n_fit], 0.005, 4, gap=cfg["win"], hysteresis=2)[:2]
        preds.append(P.points(cfg, [(model, thr)], x, P.N_TRAIN))
        trues.append(y[P.N_TRAIN:].astype(bool))
    r = P.M.skab_binary(trues, preds)
    return {k: round(r[k], 3) for k in ("F1", "FAR", "MAR")}


def main() -> None:
    steps = [("proto", 0.9, 0.0, False), ("var=0.95", 0.95, 0.0, False), ("holdout=0.2", 0.95, 0.2, False),
             ("train-quantile", 0.95, 0.2, True)]
    for name, var, hold, tq in steps:
        print(json.dumps({"step": name, "var": var, "holdout": hold, "train_quantile": tq,
                          "test": run(var, hold, tq)}), flush=True)
    # each product convention alone, on the prototype
    for name, var, hold, tq in [("only holdout=0.2", 0.9, 0.2, False), ("only train-quantile", 0.9, 0.0, True)]:
        print(json.dumps({"step": name, "var": var, "holdout": hold, "train_quantile": tq,
                          "test": run(var, hold, tq)}), flush=True)


if __name__ == "__main__":
    main()
