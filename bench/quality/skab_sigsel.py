"""Training-only signal selection for SKAB: replay the protocol on the anomaly-free file with each signal
alone (and with a 'drop the drifting ones' subset) and report the replayed FAR."""
import eval_skab as E

x, _ = E.load(f"{E.ROOT}/anomaly-free/anomaly-free.csv")
L = 1150
chunks = [x[i:i + L] for i in range(0, len(x) - L + 1, L)]
cfg = dict(model="knn", win=5, stats=("mean", "std"))
for j, s in enumerate(E.SIG):
    print(s, round(E.replay_far(cfg, 0.01, [c[:, [j]] for c in chunks]), 3), flush=True)
