"""Tennessee Eastman: train on d00.dat (normal, stored transposed: 52 x 500), test d01_te..d21_te (fault from
row 160) and d00_te. A row's decision is the alarm state of the window ending at that row (causal, hop 1);
rows before the first full window are "no alarm".

Model/config selection uses training data only: the threshold comes from blocked cross-calibration on d00.dat;
candidates are ranked by the number of faults detected at >= 50 % of rows of the TRAINING fault files
d01..d21.dat (all 480 rows faulty), among candidates whose forward false-alarm rate on d00.dat is <= 5 %.
Usage: python eval_tep.py            (selection + test)
"""
import itertools
import json
import time

import calibrate as C
import detectors as D
import numpy as np
import winfeat as W

ROOT = "/work/shared/data/tep"
TARGET_FAR = 0.01
K_FOLDS = 4


def load(name):
    x = np.loadtxt(f"{ROOT}/{name}.dat.gz")
    return x.T if name == "d00" else x


def feats(x, win, stats):
    if win == 1:
        return x.copy()
    f, _, _ = W.features(x, win, 1, dt=3.0, which=stats)
    return f


def decisions(model, thr, x, win, stats):
    a = C.alarms(model.score(feats(x, win, stats)), thr)
    out = np.zeros(len(x), dtype=bool)
    out[win - 1:] = a  # window ending at row win-1+i
    return out


CANDIDATES = [dict(model=m, win=w, stats=s)
              for m, (w, s) in itertools.product(
                  ("pca", "knn"),
                  [(1, ()), (5, ("mean", "std")), (10, ("mean", "std")), (20, ("mean", "std")),
                   (10, ("mean", "std", "slope")), (20, ("mean", "std", "slope"))])]


def make(cfg):
    return (lambda: D.PCAT2Q(var=0.9)) if cfg["model"] == "pca" else (lambda: D.KNN(k=5))


def fit(cfg, x00):
    f = feats(x00, cfg["win"], cfg["stats"])
    gap = cfg["win"]
    m, thr, rate, _ = C.cross_calibrate(make(cfg), f, TARGET_FAR, K_FOLDS, gap=gap)
    fwd = C.forward_check(make(cfg), f, TARGET_FAR, K_FOLDS, gap=gap)
    return m, thr, fwd


def main():
    t0 = time.time()
    x00 = load("d00")
    train_faults = {i: load(f"d{i:02d}") for i in range(1, 22)}
    sel = []
    for cfg in CANDIDATES:
        f00 = feats(x00, cfg["win"], cfg["stats"])
        try:  # the product's training-size rule (here at the 5 % test bound: 500 rows cannot resolve 1 %)
            C.check_training_size(len(f00), 0.05, f00.shape[1], 3.0 * cfg["win"], 3.0)
            size_ok = True
        except C.TrainingDataTooSmall:
            size_ok = False
        m, thr, fwd = fit(cfg, x00)
        dr = {i: float(decisions(m, thr, x, cfg["win"], cfg["stats"])[cfg["win"] - 1:].mean())
              for i, x in train_faults.items()}
        n50 = sum(v >= 0.5 for v in dr.values())
        sel.append({**cfg, "n_features": f00.shape[1], "size_ok": size_ok, "forward_far": fwd, "train_faults_detected": n50, "train_mean_dr": float(np.mean(list(dr.values())))})
        print(json.dumps(sel[-1]), flush=True)
    ok = [s for s in sel if s["forward_far"] <= 0.05 and s["size_ok"]] or sel
    best = max(ok, key=lambda s: (s["train_faults_detected"], s["train_mean_dr"]))
    cfg = {k: best[k] for k in ("model", "win", "stats")}
    m, thr, fwd = fit(cfg, x00)
    res = {"selection": sel, "chosen": {**cfg, "threshold": thr, "forward_far": fwd}, "faults": {}}
    d00 = decisions(m, thr, load("d00_te"), cfg["win"], cfg["stats"])
    res["d00_te_FAR"] = float(d00.mean())
    pre = []
    allf = []
    for i in range(1, 22):
        xt = load(f"d{i:02d}_te")
        d = decisions(m, thr, xt, cfg["win"], cfg["stats"])
        pre.append(d[:160])
        first = np.flatnonzero(d[160:])
        res["faults"][i] = {"detection_rate": float(d[160:].mean()), "FAR_rows_0_159": float(d[:160].mean()),
                            "first_alarm_delay_rows": int(first[0]) if first.size else None}
        allf.append(feats(xt, cfg["win"], cfg["stats"]))
    res["FAR_rows_0_159_all"] = float(np.concatenate(pre).mean())
    res["FAR_rows_0_159_max_file"] = float(max(p.mean() for p in pre))
    res["detected_faults_50pct"] = [i for i, v in res["faults"].items() if v["detection_rate"] >= 0.5]
    res["n_detected"] = len(res["detected_faults_50pct"])
    res["onnx"] = D.onnx_check(m, np.concatenate(allf))
    res["runtime_s"] = time.time() - t0
    json.dump(res, open("tep.json", "w"), indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "selection"}, indent=1))


if __name__ == "__main__":
    main()
