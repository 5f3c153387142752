"""The ``autoencoder`` kind's fit: a dense autoencoder on the standardized features, trained with PyTorch
(CPU, one thread, seeded: the same data and options give the same graph) with Adam on the mean squared
reconstruction error, stopped early on the last ``validation`` share of the training windows (the best
epoch's weights are kept). The threshold is left to ``inference.train.fit`` (``threshold=None``)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from inference.models.autoencoder.graph import build_net, check_export, export_onnx, require_torch
from inference.models.autoencoder.settings import AutoencoderSettings
from inference.models.base import FittedModel, Progress, standardizer


class AutoencoderKind:
    name = "autoencoder"
    settings = AutoencoderSettings

    def fit(self, x_train: np.ndarray, options: AutoencoderSettings, progress: Progress) -> FittedModel:
        torch = require_torch()
        x = np.asarray(x_train, dtype=np.float64)
        n = x.shape[1]
        code = options.code or max(1, n // 4)
        mu, sd = standardizer(x)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(options.seed)
                net = build_net(n, options.hidden, code, mu, sd)
                best_epoch, best_loss = _train(torch, net, ((x - mu) / sd).astype(np.float32), options)
            net.eval()
            progress(
                f"autoencoder: {n} → {options.hidden} → {code}; best validation loss {best_loss:.4g} "
                f"at epoch {best_epoch + 1}"
            )
            onnx_bytes = export_onnx(net, n)
            diff = check_export(onnx_bytes, net, x)
        finally:
            torch.set_num_threads(threads)
        progress(f"autoencoder: onnxruntime equals torch within {diff:.2g} on the training windows")

        def score(x_new: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                s, _ = net(torch.from_numpy(np.ascontiguousarray(x_new, dtype=np.float32)))
            return np.asarray(s.numpy(), dtype=np.float64)

        return FittedModel(
            onnx=onnx_bytes,
            threshold=None,
            thresholds={},
            extra={"code": code, "hidden": options.hidden, "epochs": best_epoch + 1,
                   "validation_loss": best_loss, "onnx_max_diff": diff},
            score=score,
        )


def _train(torch: Any, net: Any, z: np.ndarray, options: AutoencoderSettings) -> tuple[int, float]:
    """Adam on the last (1 - validation) windows' reconstruction error, early stopping on the rest; the
    best epoch's weights are loaded into ``net``. Returns that epoch and its validation loss."""
    n_val = max(1, round(len(z) * options.validation))
    z_fit, z_val = torch.from_numpy(z[: len(z) - n_val]), torch.from_numpy(z[len(z) - n_val :])
    opt = torch.optim.Adam(net.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    gen = torch.Generator().manual_seed(options.seed)
    best_loss, best_epoch, best_state, waited = float("inf"), 0, copy.deepcopy(net.state_dict()), 0
    for epoch in range(options.epochs):
        net.train()
        perm = torch.randperm(len(z_fit), generator=gen)
        for lo in range(0, len(z_fit), options.batch_size):
            loss = net.errors(z_fit[perm[lo : lo + options.batch_size]]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val = float(net.errors(z_val).mean())
        if val < best_loss:
            best_loss, best_epoch, best_state, waited = val, epoch, copy.deepcopy(net.state_dict()), 0
        else:
            waited += 1
            if waited >= options.patience:
                break
    net.load_state_dict(best_state)
    return best_epoch, best_loss


KIND = AutoencoderKind()
