"""SKAB v0.9 outlier detection, leaderboard protocol: each of the 34 labelled files is split into its first
400 rows (train, normal) and the rest (test); one model per file with the SAME configuration for every file;
point-wise F1 / FAR / MAR over all test parts together (metrics.skab_binary). A point is flagged when an
alarm window (after the product's hysteresis) covers it.

Configuration choice uses no test label: the anomaly-free file is cut into chunks that replay the protocol
(first 400 rows train, the next rows "test", all normal); for each candidate the calibration target is the
largest of a grid whose replayed FAR stays <= 8 % (FAR bound 10 % minus a margin); candidates are then ranked
by replayed FAR at that target... see choose(). Usage: python eval_skab.py
"""
import glob
import itertools
import json
import time

import calibrate as C
import detectors as D
import metrics as M
import numpy as np
import pandas as pd
import winfeat as W

ROOT = "/work/shared/data/skab"
SIG = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
       "Voltage", "Volume Flow RateRMS"]
N_TRAIN = 400


def files():
    fs = sorted(glob.glob(f"{ROOT}/valve1/*.csv")) + sorted(glob.glob(f"{ROOT}/valve2/*.csv")) + \
        sorted(glob.glob(f"{ROOT}/other/*.csv"))
    return fs


def load(f):
    df = pd.read_csv(f, sep=";", index_col="datetime", parse_dates=True)
    return df[SIG].to_numpy(float), (df["anomaly"].to_numpy() if "anomaly" in df else None)


def feats(x, win, stats):
    if win == 1:
        return x.copy(), np.arange(len(x))
    f, st, _ = W.features(x, win, 1, which=stats)
    return f, st


def run_file(cfg, x, target):
    win = cfg["win"]
    if cfg.get("signals") is not None:
        x = x[:, cfg["signals"]]
    ftr, _ = feats(x[:N_TRAIN], win, cfg["stats"])
    mk = (lambda: D.PCAT2Q(var=cfg.get("var", 0.9))) if cfg["model"] == "pca" else (lambda: D.KNN(k=cfg.get("k", 5)))
    m, thr, _, _ = C.cross_calibrate(mk, ftr, target, 4, gap=win)
    # test windows: causal windows over the test rows (a window may reach back into the train rows so that
    # the first test row already has a full window; its points before row 400 are not scored)
    xt = x[N_TRAIN - win + 1:]
    fte, st = feats(xt, win, cfg["stats"])
    a = C.alarms(m.score(fte), thr)
    pts = M.alarm_points(len(xt), st, st + win, a)[win - 1:]
    return pts, m, fte


CANDIDATES = [dict(model=m, win=w, stats=s) for m, (w, s) in itertools.product(
    ("knn", "pca"), [(1, ()), (5, ("mean", "std")), (10, ("mean", "std")), (10, ("mean",))])]
TARGETS = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1]


def replay_far(cfg, target, chunks):
    fl = [run_file(cfg, c, target)[0] for c in chunks]
    return float(np.concatenate(fl).mean())


def choose():
    x, _ = load(f"{ROOT}/anomaly-free/anomaly-free.csv")
    L = 1150  # ~ the labelled files' length (SKAB files have 700..1300 rows)
    chunks = [x[i:i + L] for i in range(0, len(x) - L + 1, L)]
    out = []
    for cfg in CANDIDATES:
        # signal selection (anomaly-free replay only): keep the signals whose own replayed FAR at a 1 %
        # calibration target is <= 10 % (the protocol's FAR bound); the others drift within minutes
        if SELECT_SIGNALS:
            single = [replay_far({**cfg, "signals": [j]}, 0.01, chunks) for j in range(len(SIG))]
            cfg = {**cfg, "signals": [j for j in range(len(SIG)) if single[j] <= 0.10]}
        else:
            cfg = {**cfg, "signals": list(range(len(SIG)))}
        fars = {t: replay_far(cfg, t, chunks) for t in TARGETS}
        ok = [t for t in TARGETS if fars[t] <= 0.08]
        t = max(ok) if ok else min(TARGETS)
        out.append({**cfg, "target": t, "replay_far": fars[t], "replay_fars": fars})
        print(json.dumps(out[-1]), flush=True)
    return out, len(chunks)


def main():
    t0 = time.time()
    sel, nchunks = choose()
    # rank: the least conservative calibration that keeps the replayed FAR <= 8 % (a larger admissible
    # target = more sensitivity for the same false alarms), then the lower replayed FAR
    best = max(sel, key=lambda s: (s["target"], -s["replay_far"]))
    cfg = {k: best[k] for k in ("model", "win", "stats", "signals")}
    trues, preds, per_file, allf, mlast = [], [], {}, [], None
    for f in files():
        x, y = load(f)
        p, m, fte = run_file(cfg, x, best["target"])
        yt = y[N_TRAIN:].astype(bool)
        trues.append(yt); preds.append(p)
        r = M.skab_binary([yt], [p])
        ev = M.event_detection(yt, p)
        per_file[f.split("skab/")[1]] = {"F1": round(r["F1"], 3), "FAR": round(r["FAR"], 2), "MAR": round(r["MAR"], 2),
                                         "events": ev["events"], "detected": ev["detected"], "delays": ev["delays"]}
        allf.append((m, fte))
    tot = M.skab_binary(trues, preds)
    ev_all = [M.event_detection(t, p) for t, p in zip(trues, preds)]
    onnx = D.onnx_check(allf[0][0], allf[0][1])
    res = {"signals_kept": [SIG[j] for j in cfg["signals"]], "selection": sel, "replay_chunks": nchunks, "chosen": {**cfg, "target": best["target"]},
           "total": tot, "events": sum(e["events"] for e in ev_all), "events_detected": sum(e["detected"] for e in ev_all),
           "mean_delay_s": float(np.mean([d for e in ev_all for d in e["delays"] if d is not None])),
           "per_file": per_file, "onnx_first_file": onnx, "runtime_s": time.time() - t0}
    json.dump(res, open(OUT, "w"), indent=1)
    print(json.dumps({k: v for k, v in res.items() if k not in ("per_file", "selection")}, indent=1))


if __name__ == "__main__":
    import sys
    SELECT_SIGNALS = "--all-signals" not in sys.argv
    OUT = "skab_all_signals.json" if not SELECT_SIGNALS else "skab.json"
    main()
