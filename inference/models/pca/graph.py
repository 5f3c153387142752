"""The PCA T²/SPE scoring graph, built with ``onnx.helper`` from the fitted parameters.

``score`` = max(T²/T²_lim, SPE/SPE_lim), so the alarm threshold is 1.0. ``contributions``: per feature,
r_j²/SPE_lim + z_j·Σ_a p_ja t_a/λ_a / T²_lim (the SPE and T² contributions, which sum to the two ratios).
"""

from __future__ import annotations

import numpy as np

from inference.models.base import model_bytes, tensor


def pca_onnx(
    mu: np.ndarray, sd: np.ndarray, components: np.ndarray, eigvals: np.ndarray, t2_lim: float, spe_lim: float
) -> bytes:
    """The graph: input ``features``, outputs ``score``, ``contributions``, ``t2``, ``spe``."""
    from onnx import TensorProto, helper

    n = int(mu.shape[0])
    p = components.T  # (n, k)
    nodes = [
        helper.make_node("Sub", ["features", "mu"], ["xc"]),
        helper.make_node("Div", ["xc", "sd"], ["z"]),
        helper.make_node("MatMul", ["z", "P"], ["t"]),  # (b, k)
        helper.make_node("Mul", ["t", "t"], ["t_sq"]),
        helper.make_node("Div", ["t_sq", "lam"], ["t_sq_l"]),
        helper.make_node("ReduceSum", ["t_sq_l", "axis1"], ["t2"], keepdims=0),
        helper.make_node("MatMul", ["t", "PT"], ["zhat"]),
        helper.make_node("Sub", ["z", "zhat"], ["r"]),
        helper.make_node("Mul", ["r", "r"], ["r_sq"]),
        helper.make_node("ReduceSum", ["r_sq", "axis1"], ["spe"], keepdims=0),
        helper.make_node("Div", ["t2", "t2_lim"], ["t2_ratio"]),
        helper.make_node("Div", ["spe", "spe_lim"], ["spe_ratio"]),
        helper.make_node("Max", ["t2_ratio", "spe_ratio"], ["score"]),
        # contributions: r_j²/SPE_lim + z_j * (P (t/λ))_j / T²_lim
        helper.make_node("Div", ["t", "lam"], ["t_l"]),
        helper.make_node("MatMul", ["t_l", "PT"], ["back"]),
        helper.make_node("Mul", ["z", "back"], ["c_t2"]),
        helper.make_node("Div", ["c_t2", "t2_lim"], ["c_t2_r"]),
        helper.make_node("Div", ["r_sq", "spe_lim"], ["c_spe_r"]),
        helper.make_node("Add", ["c_t2_r", "c_spe_r"], ["contributions"]),
    ]
    inits = [
        tensor("mu", mu),
        tensor("sd", sd),
        tensor("P", p),
        tensor("PT", p.T.copy()),
        tensor("lam", eigvals),
        tensor("t2_lim", np.array(t2_lim)),
        tensor("spe_lim", np.array(spe_lim)),
    ]
    from onnx import numpy_helper

    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    graph = helper.make_graph(
        nodes,
        "pca_t2_spe",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, [None, n]),
            helper.make_tensor_value_info("t2", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("spe", TensorProto.FLOAT, [None]),
        ],
        inits,
    )
    return model_bytes(graph)
