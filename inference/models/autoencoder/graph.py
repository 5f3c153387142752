"""The autoencoder network and its ONNX export (``torch.onnx.export``, opset 17).

The exported module takes ``features`` float32 (batch, n), standardizes them with the training mean and std
(buffers), reconstructs them through Linear-Tanh-Linear(code)-Tanh-Linear-Tanh-Linear and returns
``contributions`` = the per-feature squared reconstruction error (standardized units) and ``score`` = their
mean. The export is checked: exactly that input and those two outputs, and onnxruntime equal to torch.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

TORCH_MISSING = (
    "the autoencoder model kind trains with PyTorch, which is not installed; "
    "install it with: pip install 'factory-edge[train-torch]'"
)


def require_torch() -> Any:
    """The ``torch`` module, or an ImportError naming the install command."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(TORCH_MISSING) from e
    return torch


def build_net(n: int, hidden: int, code: int, mu: np.ndarray, sd: np.ndarray) -> Any:
    """The scoring module (forward: features → score, contributions)."""
    torch = require_torch()
    nn = torch.nn

    class AutoencoderNet(nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
            self.register_buffer("sd", torch.tensor(sd, dtype=torch.float32))
            self.encoder = nn.Sequential(nn.Linear(n, hidden), nn.Tanh(), nn.Linear(hidden, code), nn.Tanh())
            self.decoder = nn.Sequential(nn.Linear(code, hidden), nn.Tanh(), nn.Linear(hidden, n))

        def errors(self, z: Any) -> Any:
            """Per-feature squared reconstruction error of standardized rows."""
            r = self.decoder(self.encoder(z))
            return (r - z) ** 2

        def forward(self, features: Any) -> tuple[Any, Any]:
            c = self.errors((features - self.mu) / self.sd)
            return c.mean(dim=1), c

    return AutoencoderNet()


def export_onnx(net: Any, n: int) -> bytes:
    """``torch.onnx.export`` (the TorchScript exporter, opset 17) with a dynamic batch axis; the graph's
    input and outputs are checked against the model kind protocol."""
    import onnx

    torch = require_torch()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            net,
            (torch.zeros(2, n),),
            buf,
            input_names=["features"],
            output_names=["score", "contributions"],
            dynamic_axes={"features": {0: "batch"}, "score": {0: "batch"}, "contributions": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model)
    ins = [i.name for i in model.graph.input]
    outs = [o.name for o in model.graph.output]
    if ins != ["features"] or outs != ["score", "contributions"]:
        raise RuntimeError(
            f"autoencoder export: inputs {ins}, outputs {outs}; want features → score, contributions"
        )
    return buf.getvalue()


def check_export(onnx_bytes: bytes, net: Any, x: np.ndarray, tol: float = 1e-5) -> float:
    """Largest |onnxruntime − torch| over ``score`` and ``contributions`` of the rows ``x``, relative to
    max(1, |value|); a RuntimeError above ``tol``."""
    import onnxruntime as ort

    torch = require_torch()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    s_ort, c_ort = sess.run(["score", "contributions"], {"features": x32})
    with torch.no_grad():
        s_t, c_t = (v.numpy() for v in net(torch.from_numpy(x32)))
    diff = max(
        float(np.max(np.abs(s_ort - s_t) / np.maximum(1.0, np.abs(s_t)), initial=0.0)),
        float(np.max(np.abs(c_ort - c_t) / np.maximum(1.0, np.abs(c_t)), initial=0.0)),
    )
    if diff > tol:
        raise RuntimeError(f"autoencoder export: onnxruntime differs from torch by {diff:.3g} (> {tol:g})")
    return diff
