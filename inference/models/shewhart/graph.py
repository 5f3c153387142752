"""The Shewhart scoring graph, built with ``onnx.helper`` from the training mean, std and limit.

Computes in float64 after the input (Cast). ``score`` = max_j |z_j| / limit; ``contributions`` = |z_j| / limit
(the feature that sets the score has the largest contribution).
"""

from __future__ import annotations

import numpy as np

from inference.models.base import model_bytes


def shewhart_onnx(mu: np.ndarray, sd: np.ndarray, limit: float) -> bytes:
    """The graph: input ``features`` (batch, n) float32, outputs ``score`` (batch,) and ``contributions``
    (batch, n), both float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = int(mu.shape[0])

    def c(name: str, arr: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float64), name)

    nodes = [
        helper.make_node("Cast", ["features"], ["x"], to=TensorProto.DOUBLE),
        helper.make_node("Sub", ["x", "mu"], ["xc"]),
        helper.make_node("Div", ["xc", "sd_lim"], ["z"]),  # sd_lim = sd * limit: z already over the limit
        helper.make_node("Abs", ["z"], ["az"]),
        helper.make_node("ReduceMax", ["az"], ["score64"], axes=[1], keepdims=0),
        helper.make_node("Cast", ["score64"], ["score"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["az"], ["contributions"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "shewhart_zmax",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, [None, n]),
        ],
        [c("mu", mu), c("sd_lim", sd * limit)],
    )
    return model_bytes(graph)
