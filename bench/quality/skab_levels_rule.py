"""The threshold of ``--levels auto`` (``inference.levels``), chosen on SKAB's anomaly-free file only.

    python skab_levels_rule.py > skab_levels_rule.out

The anomaly-free file is cut into 8 chunks shaped like the leaderboard protocol (first 400 rows train, the
next 750 "test", all normal). For each chunk and signal, what actually happened: the signal's level DRIFTED
when more than half of the test part's window means lie outside the span (min..max) of the training part's
window means. What the rule predicts from the training part alone: the product's ``level_shift`` (median
window mean of the last quarter against the first quarter, in the first quarter's robust spread) above the
threshold. The threshold with the best balanced accuracy (mean of the rates of drifting and steady cases
called right) wins; the same candidates with a second statistic (variance ratio: spread of the window means
over the noise the windows' own std explains) for comparison. Windows: 5 rows every row and 10 every 5 (the
product default of 10 s every 5 s at SKAB's 1 row a second). No labelled file is read, except, for the
last column only, the training rows (first 400) of the 34 labelled files: how many of their models each
signal would lose its level in (no label is read).
"""
import json
import sys
from pathlib import Path

import numpy as np
import proto_skab as P
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from inference.levels import LevelRule, level_shift


def means(x, win, hop):
    return sliding_window_view(x, win, axis=0)[::hop].mean(-1)


def variance_ratio(x, win, hop):
    w = sliding_window_view(x, win, axis=0)[::hop]
    noise = float(np.mean(w.std(-1))) / np.sqrt(win)
    return float(np.std(w.mean(-1))) / max(noise, 1e-12)


def main() -> None:
    free, _ = P.load(f"{P.ROOT}/anomaly-free/anomaly-free.csv")
    chunks = [free[i:i + 1150] for i in range(0, len(free) - 1149, 1150)]
    labelled = [P.load(f)[0][:P.N_TRAIN] for f in P.files()]
    stats = {
        "shift": lambda x, win, hop: level_shift(means(x, win, hop), LevelRule(part=0.25)),
        "variance_ratio": variance_ratio,
    }
    for win, hop in ((5, 1), (10, 5)):
        truth, values = [], {k: [] for k in stats}
        for c in chunks:
            for j in range(len(P.SIG)):
                mt, ms = means(c[:P.N_TRAIN, j], win, hop), means(c[P.N_TRAIN:, j], win, hop)
                truth.append(float(np.mean((ms < mt.min()) | (ms > mt.max()))) > 0.5)
                for k, fn in stats.items():
                    values[k].append(fn(c[:P.N_TRAIN, j], win, hop))
        t = np.array(truth)
        print(json.dumps({"window": win, "hop": hop, "cases": len(t), "drifted": int(t.sum()),
                          "drifted_per_signal": dict(zip(P.SIG, t.reshape(len(chunks), -1).sum(0).tolist(),
                                                         strict=True))}))
        for k, fn in stats.items():
            v = np.array(values[k])
            for thr in (1.0, 2.0, 3.0, 5.0, 10.0):
                d = v > thr
                bal = (np.mean(d[t]) + np.mean(~d[~t])) / 2
                per_signal = [sum(fn(x[:, j], win, hop) > thr for x in labelled) for j in range(len(P.SIG))]
                print(json.dumps({"window": win, "hop": hop, "statistic": k, "threshold": thr,
                                  "flagged": int(d.sum()), "hit": int((d & t).sum()),
                                  "false": int((d & ~t).sum()), "missed": int((~d & t).sum()),
                                  "balanced_accuracy": round(float(bal), 3),
                                  "labelled_train_level_free": dict(zip(P.SIG, map(int, per_signal),
                                                                        strict=True))}))


if __name__ == "__main__":
    main()
