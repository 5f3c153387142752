"""1-D convolutional autoencoder over a window's aligned raw signals (input (batch, signals * win) float32,
flattened signal-major so it fits the product's ``features`` input), per-signal reconstruction error as
contributions, score = mean over signals of (error / held-out-free training error scale). Exported with
torch.onnx.export; ``onnx_check`` in detectors.py works on it (it has score/contributions/fit).
Usage (demo on TEP, d00 train, threshold cross-calibrated): python autoencoder.py
"""
import io
import json
import time

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)


class _Net(nn.Module):
    def __init__(self, s, win, mu, sd, esc):
        super().__init__()
        self.s, self.win = s, win
        self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
        self.register_buffer("sd", torch.tensor(sd, dtype=torch.float32))
        self.register_buffer("esc", torch.tensor(esc, dtype=torch.float32))
        h = 32
        self.enc = nn.Sequential(nn.Conv1d(s, h, 3, padding=1), nn.ReLU(), nn.Conv1d(h, 8, 3, padding=1), nn.ReLU())
        self.dec = nn.Sequential(nn.Conv1d(8, h, 3, padding=1), nn.ReLU(), nn.Conv1d(h, s, 3, padding=1))

    def recon_err(self, x):
        z = ((x.view(-1, self.s, self.win) - self.mu[None, :, None]) / self.sd[None, :, None])
        r = self.dec(self.enc(z))
        return ((r - z) ** 2).mean(-1)  # (batch, signals)

    def forward(self, x):
        c = self.recon_err(x) / self.esc
        return c.mean(-1), c


class ConvAE:
    kind = "conv_ae"

    def __init__(self, n_signals, win, epochs=60, seed=0):
        self.s, self.win, self.epochs, self.seed = n_signals, win, epochs, seed

    def fit(self, x):  # x: (n, signals*win) float
        torch.manual_seed(self.seed)
        w = x.reshape(len(x), self.s, self.win)
        mu = w.mean((0, 2)); sd = w.std((0, 2)) + 1e-9
        self.net = _Net(self.s, self.win, mu, sd, np.ones(self.s))
        opt = torch.optim.Adam(self.net.parameters(), lr=3e-3)
        xt = torch.tensor(x, dtype=torch.float32)
        for ep in range(self.epochs):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 64):
                loss = self.net.recon_err(xt[perm[i:i + 64]]).mean()
                opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad():
            self.net.esc.copy_(self.net.recon_err(xt).mean(0) + 1e-9)
        self.net.eval()
        return self

    def _run(self, x):
        with torch.no_grad():
            s, c = self.net(torch.tensor(np.asarray(x), dtype=torch.float32))
        return s.double().numpy(), c.double().numpy()

    def score(self, x):
        return self._run(x)[0]

    def contributions(self, x):
        return self._run(x)[1]

    def to_onnx(self):
        buf = io.BytesIO()
        torch.onnx.export(self.net, (torch.zeros(1, self.s * self.win),), buf, input_names=["features"],
                          output_names=["score", "contributions"], dynamic_axes={"features": {0: "batch"},
                          "score": {0: "batch"}, "contributions": {0: "batch"}}, opset_version=17, dynamo=False)
        return buf.getvalue()


def raw_windows(x, win):
    from numpy.lib.stride_tricks import sliding_window_view
    v = sliding_window_view(x, win, axis=0)  # (n-win+1, signals, win)
    return np.ascontiguousarray(v.reshape(len(v), -1))


if __name__ == "__main__":
    import calibrate as C
    import detectors as D
    import eval_tep as T
    t0 = time.time()
    win = 10
    x00 = T.load("d00")
    f = raw_windows(x00, win)
    m, thr, _, _ = C.cross_calibrate(lambda: ConvAE(52, win), f, 0.01, 4, gap=win)
    res = {"threshold": thr, "faults": {}}
    d = C.alarms(m.score(raw_windows(T.load("d00_te"), win)), thr)
    res["d00_te_FAR"] = float(d.mean())
    pre, allf = [], []
    for i in range(1, 22):
        xt = T.load(f"d{i:02d}_te")
        fw = raw_windows(xt, win)
        a = np.zeros(len(xt), bool); a[win - 1:] = C.alarms(m.score(fw), thr)
        pre.append(a[:160]); res["faults"][i] = round(float(a[160:].mean()), 3); allf.append(fw)
    res["FAR_rows_0_159_all"] = float(np.concatenate(pre).mean())
    res["n_detected"] = sum(v >= 0.5 for v in res["faults"].values())
    res["onnx"] = D.onnx_check(m, np.concatenate(allf))
    res["runtime_s"] = time.time() - t0
    json.dump(res, open("tep_convae.json", "w"), indent=1)
    print(json.dumps(res))
