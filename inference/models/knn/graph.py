"""The k-NN scoring graph, built with ``onnx.helper`` from the standardized reference windows.

Computes in float64 after the input (Cast), so onnxruntime agrees with the numpy reference to ~1e-7.
d²(z, r) = ‖z‖² − 2 z·r + ‖r‖² (ReduceSum, MatMul), clipped at 0; TopK (smallest) picks the k nearest;
``score`` = mean of their distances (sqrt); ``contributions`` = (z_j − mean of the k nearest r_j)².
"""

from __future__ import annotations

import numpy as np

from inference.models.base import model_bytes


def knn_onnx(mu: np.ndarray, sd: np.ndarray, ref: np.ndarray, k: int) -> bytes:
    """The graph: input ``features`` (batch, n) float32, outputs ``score`` (batch,), ``contributions``
    (batch, n), both float32. ``ref``: the standardized reference windows (m, n), ``k`` <= m."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = int(mu.shape[0])

    def c(name: str, arr: np.ndarray, dtype: type = np.float64) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(arr, dtype=dtype), name)

    nodes = [
        helper.make_node("Cast", ["features"], ["x"], to=TensorProto.DOUBLE),
        helper.make_node("Sub", ["x", "mu"], ["xc"]),
        helper.make_node("Div", ["xc", "sd"], ["z"]),
        helper.make_node("Mul", ["z", "z"], ["zz"]),
        helper.make_node("ReduceSum", ["zz", "axis1"], ["z_sq"], keepdims=1),  # (b, 1)
        helper.make_node("MatMul", ["z", "refT"], ["zr"]),  # (b, m)
        helper.make_node("Mul", ["zr", "minus2"], ["zr2"]),
        helper.make_node("Add", ["z_sq", "zr2"], ["d2a"]),
        helper.make_node("Add", ["d2a", "ref_sq"], ["d2b"]),
        helper.make_node("Max", ["d2b", "zero"], ["d2"]),
        helper.make_node("TopK", ["d2", "k"], ["top_d2", "top_i"], largest=0, sorted=1),  # (b, k)
        helper.make_node("Sqrt", ["top_d2"], ["top_d"]),
        helper.make_node("ReduceMean", ["top_d"], ["s64"], axes=[1], keepdims=0),
        helper.make_node("Cast", ["s64"], ["score"], to=TensorProto.FLOAT),
        # contributions: squared deviation from the mean of the k nearest reference windows
        helper.make_node("Gather", ["refT", "top_i"], ["nb"], axis=1),  # (n, b, k)
        helper.make_node("ReduceMean", ["nb"], ["nb_mean"], axes=[2], keepdims=0),  # (n, b)
        helper.make_node("Transpose", ["nb_mean"], ["centre"], perm=[1, 0]),  # (b, n)
        helper.make_node("Sub", ["z", "centre"], ["dz"]),
        helper.make_node("Mul", ["dz", "dz"], ["c64"]),
        helper.make_node("Cast", ["c64"], ["contributions"], to=TensorProto.FLOAT),
    ]
    inits = [
        c("mu", mu),
        c("sd", sd),
        c("refT", ref.T),
        c("ref_sq", (ref * ref).sum(axis=1)[None, :]),
        c("minus2", np.array(-2.0)),
        c("zero", np.array(0.0)),
        c("axis1", np.array([1]), np.int64),
        c("k", np.array([k]), np.int64),
    ]
    graph = helper.make_graph(
        nodes,
        "knn_distance",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, [None, n]),
        ],
        inits,
    )
    return model_bytes(graph)
