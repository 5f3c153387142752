"""Candidate detectors on window features, each with an ONNX export (input ``features`` float32 (batch, n);
outputs ``score`` float32 (batch,) and ``contributions`` float32 (batch, n)), the product's model contract.

* ``KNN``     : standardized features, score = mean Euclidean distance to the k nearest reference windows
                (MSET/similarity family), contributions = squared per-feature difference to the nearest one.
* ``PCAT2Q``  : standardized features, PCA keeping ``var`` of the variance; score = max(T2/T2_s, Q/Q_s) with
                T2_s, Q_s the held-out (1 - alpha) quantiles (set by ``set_scales``); contributions = the
                product's SPE + T2 per-feature split.
* ``ConvAE``  : (autoencoder.py) 1-D convolutional autoencoder over the window's aligned raw signals.

Graphs compute in float64 inside (Cast after the input) so that onnxruntime matches numpy within ~1e-7.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(0)
    sd = x.std(0)
    floor = 1e-6 * np.maximum(np.abs(mu), 1e-3)
    return mu, np.where(sd < floor, np.maximum(floor, 1e-9), sd)


def _c(name: str, arr) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)


def _model(nodes, inits, n: int, name: str) -> bytes:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, ["batch", n]),
        ],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


class KNN:
    kind = "knn"

    def __init__(self, k: int = 5, max_ref: int = 4000, seed: int = 0):
        self.k, self.max_ref, self.seed = k, max_ref, seed

    def fit(self, x: np.ndarray) -> KNN:
        self.mu, self.sd = standardizer(x)
        z = (x - self.mu) / self.sd
        if len(z) > self.max_ref:
            idx = np.random.default_rng(self.seed).choice(len(z), self.max_ref, replace=False)
            z = z[np.sort(idx)]
        self.ref = z
        self.ref_sq = (z**2).sum(1)
        return self

    def _d2(self, z: np.ndarray) -> np.ndarray:
        d2 = (z**2).sum(1)[:, None] - 2.0 * z @ self.ref.T + self.ref_sq[None, :]
        return np.maximum(d2, 0.0)

    def score(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        out = np.empty(len(x))
        k = min(self.k, len(self.ref))
        for i in range(0, len(x), chunk):
            z = (x[i : i + chunk] - self.mu) / self.sd
            d2 = self._d2(z)
            part = np.partition(d2, k - 1, axis=1)[:, :k]
            out[i : i + chunk] = np.sqrt(part).mean(1)
        return out

    def contributions(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mu) / self.sd
        nn = np.argmin(self._d2(z), axis=1)
        return (z - self.ref[nn]) ** 2

    def to_onnx(self) -> bytes:
        n = self.mu.shape[0]
        k = min(self.k, len(self.ref))
        nodes = [
            helper.make_node("Cast", ["features"], ["x"], to=TensorProto.DOUBLE),
            helper.make_node("Sub", ["x", "mu"], ["xc"]),
            helper.make_node("Div", ["xc", "sd"], ["z"]),
            helper.make_node("Mul", ["z", "z"], ["zz"]),
            helper.make_node("ReduceSum", ["zz", "ax1"], ["zsq"], keepdims=1),
            helper.make_node("MatMul", ["z", "refT"], ["zr"]),
            helper.make_node("Mul", ["zr", "m2"], ["zr2"]),
            helper.make_node("Add", ["zsq", "zr2"], ["t1"]),
            helper.make_node("Add", ["t1", "refsq"], ["d2raw"]),
            helper.make_node("Max", ["d2raw", "zero"], ["d2"]),
            helper.make_node("TopK", ["d2", "kk"], ["topv", "topi"], largest=0, sorted=1),
            helper.make_node("Sqrt", ["topv"], ["topd"]),
            helper.make_node("ReduceMean", ["topd"], ["s64"], axes=[1], keepdims=0),
            helper.make_node("Cast", ["s64"], ["score"], to=TensorProto.FLOAT),
            # contributions: squared difference to the nearest reference window
            helper.make_node("Slice", ["topi", "st0", "st1", "ax1"], ["nn2"]),
            helper.make_node("Squeeze", ["nn2", "ax1"], ["nn"]),
            helper.make_node("Gather", ["ref", "nn"], ["rnn"], axis=0),
            helper.make_node("Sub", ["z", "rnn"], ["dz"]),
            helper.make_node("Mul", ["dz", "dz"], ["c64"]),
            helper.make_node("Cast", ["c64"], ["contributions"], to=TensorProto.FLOAT),
        ]
        inits = [
            _c("mu", self.mu.astype(np.float64)),
            _c("sd", self.sd.astype(np.float64)),
            _c("refT", np.ascontiguousarray(self.ref.T, dtype=np.float64)),
            _c("ref", self.ref.astype(np.float64)),
            _c("refsq", self.ref_sq[None, :].astype(np.float64)),
            _c("m2", np.array(-2.0)),
            _c("zero", np.array(0.0)),
            _c("ax1", np.array([1], dtype=np.int64)),
            _c("kk", np.array([k], dtype=np.int64)),
            _c("st0", np.array([0], dtype=np.int64)),
            _c("st1", np.array([1], dtype=np.int64)),
        ]
        return _model(nodes, inits, n, "knn")


class PCAT2Q:
    kind = "pca_t2q"

    def __init__(self, var: float = 0.9, max_components: int | None = None):
        self.var, self.max_components = var, max_components

    def fit(self, x: np.ndarray) -> PCAT2Q:
        self.mu, self.sd = standardizer(x)
        z = (x - self.mu) / self.sd
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        lam = s**2 / max(len(z) - 1, 1)
        frac = np.cumsum(lam) / lam.sum()
        a = int(np.searchsorted(frac, self.var) + 1)
        if self.max_components:
            a = min(a, self.max_components)
        a = max(1, min(a, len(lam) - 1 if len(lam) > 1 else 1))
        self.P = vt[:a].T  # (n, a)
        self.lam = np.maximum(lam[:a], 1e-12)
        self.t2_s = 1.0
        self.q_s = 1.0
        return self

    def parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = (x - self.mu) / self.sd
        t = z @ self.P
        r = z - t @ self.P.T
        return (t**2 / self.lam).sum(1), (r**2).sum(1)

    def set_scales(self, x_heldout: np.ndarray, q: float) -> None:
        t2, spe = self.parts(x_heldout)
        self.t2_s = float(max(np.quantile(t2, q), 1e-9))
        self.q_s = float(max(np.quantile(spe, q), 1e-9))

    def score(self, x: np.ndarray) -> np.ndarray:
        t2, spe = self.parts(x)
        return np.maximum(t2 / self.t2_s, spe / self.q_s)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mu) / self.sd
        t = z @ self.P
        r = z - t @ self.P.T
        return r**2 / self.q_s + z * ((t / self.lam) @ self.P.T) / self.t2_s

    def to_onnx(self) -> bytes:
        n = self.mu.shape[0]
        nodes = [
            helper.make_node("Cast", ["features"], ["x"], to=TensorProto.DOUBLE),
            helper.make_node("Sub", ["x", "mu"], ["xc"]),
            helper.make_node("Div", ["xc", "sd"], ["z"]),
            helper.make_node("MatMul", ["z", "P"], ["t"]),
            helper.make_node("MatMul", ["t", "PT"], ["zh"]),
            helper.make_node("Sub", ["z", "zh"], ["r"]),
            helper.make_node("Mul", ["r", "r"], ["rr"]),
            helper.make_node("ReduceSum", ["rr", "ax1"], ["spe"], keepdims=0),
            helper.make_node("Div", ["t", "lam"], ["tl"]),
            helper.make_node("Mul", ["tl", "t"], ["tt"]),
            helper.make_node("ReduceSum", ["tt", "ax1"], ["t2"], keepdims=0),
            helper.make_node("Div", ["t2", "t2s"], ["a"]),
            helper.make_node("Div", ["spe", "qs"], ["b"]),
            helper.make_node("Max", ["a", "b"], ["s64"]),
            helper.make_node("Cast", ["s64"], ["score"], to=TensorProto.FLOAT),
            helper.make_node("Div", ["rr", "qs"], ["c1"]),
            helper.make_node("MatMul", ["tl", "PT"], ["g"]),
            helper.make_node("Mul", ["z", "g"], ["zg"]),
            helper.make_node("Div", ["zg", "t2s"], ["c2"]),
            helper.make_node("Add", ["c1", "c2"], ["c64"]),
            helper.make_node("Cast", ["c64"], ["contributions"], to=TensorProto.FLOAT),
        ]
        inits = [
            _c("mu", self.mu), _c("sd", self.sd), _c("P", self.P), _c("PT", np.ascontiguousarray(self.P.T)),
            _c("lam", self.lam), _c("t2s", np.array(self.t2_s)), _c("qs", np.array(self.q_s)),
            _c("ax1", np.array([1], dtype=np.int64)),
        ]
        return _model(nodes, inits, n, "pca_t2q")


def onnx_check(model, x: np.ndarray, onnx_bytes: bytes | None = None) -> dict[str, float]:
    """Max abs / rel difference between onnxruntime and numpy scores (and contributions) on ``x``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes or model.to_onnx(), so, providers=["CPUExecutionProvider"])
    x32 = np.asarray(x, dtype=np.float32)
    s_onnx, c_onnx = sess.run(["score", "contributions"], {"features": x32})
    xs = x32.astype(np.float64)
    s_np = model.score(xs)
    c_np = model.contributions(xs)
    return {
        "score_max_abs": float(np.max(np.abs(s_onnx - s_np))),
        "score_max_rel": float(np.max(np.abs(s_onnx - s_np) / np.maximum(np.abs(s_np), 1e-12))),
        "contrib_max_abs": float(np.max(np.abs(c_onnx - c_np))),
        # relative to the row's largest contribution (fault windows have contributions of 1e6 and more)
        "contrib_max_rel": float(np.max(np.abs(c_onnx - c_np).max(1) / np.maximum(np.abs(c_np).max(1), 1e-12))),
        "n": len(x),
    }
