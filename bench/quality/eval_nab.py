"""NAB realKnownCause (7 files): each file's first 15 % (= NAB's probationary period, never scored) is the
unlabelled learning part. Same configuration for every file, fixed a priori (no label used): causal windows
of WIN rows every row, features mean/std/min/max, k-NN (k=5) fitted on the learning windows, threshold by
4-fold blocked cross-calibration on the learning windows at TARGET alarm rate after the product's hysteresis;
a NAB detection is an alarm ONSET (rising edge of the alarm level), since NAB counts every flagged row.
Usage: python eval_nab.py
"""
import csv
import glob
import json
import time

import calibrate as C
import detectors as D
import metrics as M
import numpy as np
import winfeat as W

ROOT = "/work/shared/data/nab"
CFG = dict(win=6, stats=("mean", "std", "min", "max"), k=5, target=0.005, learn=0.15)


def run(path):
    rows = list(csv.DictReader(open(path)))
    ts = [r["timestamp"] for r in rows]
    x = np.array([float(r["value"]) for r in rows])[:, None]
    n = len(x)
    nl = int(np.floor(CFG["learn"] * n))
    f, st, _ = W.features(x, CFG["win"], 1, which=CFG["stats"])
    end = st + CFG["win"] - 1  # decision row of each window
    learn = end < nl
    m, thr, _, _ = C.cross_calibrate(lambda: D.KNN(k=CFG["k"]), f[learn], CFG["target"], 4, gap=CFG["win"])
    a = C.alarms(m.score(f), thr)
    flags = np.zeros(n, dtype=bool)
    flags[end] = a
    det = M.onsets(flags)
    return ts, det, m, f


def main():
    t0 = time.time()
    wins = json.load(open(f"{ROOT}/labels/combined_windows.json"))
    per, raw, nw = {}, {p: 0.0 for p in M.NAB_PROFILES}, 0
    for path in sorted(glob.glob(f"{ROOT}/realKnownCause/*.csv")):
        key = "realKnownCause/" + path.split("/")[-1]
        ts, det, m, f = run(path)
        widx = M.nab_window_indices(ts, wins[key])
        nw += len(widx)
        per[key] = {}
        for p in M.NAB_PROFILES:
            s = M.nab_score_file(det, widx, p)
            raw[p] += s["score"]
            per[key][p] = round(s["score"], 4)
        per[key]["detections"] = int(det.sum())
        per[key]["windows"] = len(widx)
        per[key]["windows_hit"] = int(sum(det[l:r + 1].any() for l, r in widx))
    res = {"config": CFG, "per_file_raw": per, "raw_total": raw, "windows": nw,
           "normalized": {p: M.nab_normalize(raw[p], nw, p) for p in M.NAB_PROFILES},
           "onnx_last_file": D.onnx_check(m, f), "runtime_s": time.time() - t0}
    json.dump(res, open("nab.json", "w"), indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
