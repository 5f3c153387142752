"""The IsolationForest graph: skl2onnx's conversion plus ``score`` = -decision_function (higher = more
anomalous) and ``contributions`` = ((x - mean)/std)², the squared standard score per feature (the forest has
no per-feature attribution; this is a documented proxy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from inference.models.base import tensor


def iforest_onnx(forest: Any, n: int, mu: np.ndarray, sd: np.ndarray) -> bytes:
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(
        forest,
        initial_types=[("features", FloatTensorType([None, n]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
        model_optim=False,  # skl2onnx's identity-removal pass is quadratic in the nodes of a large forest
    )
    g = model.graph
    g.node.extend(
        [
            helper.make_node("Neg", ["scores"], ["neg_scores"]),
            helper.make_node("Reshape", ["neg_scores", "flat_shape"], ["score"]),
            helper.make_node("Sub", ["features", "if_mu"], ["if_xc"]),
            helper.make_node("Div", ["if_xc", "if_sd"], ["if_z"]),
            helper.make_node("Mul", ["if_z", "if_z"], ["contributions"]),
        ]
    )
    from onnx import numpy_helper

    g.initializer.extend(
        [
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape"),
            tensor("if_mu", mu),
            tensor("if_sd", sd),
        ]
    )
    while len(g.output):
        g.output.pop()
    g.output.extend(
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, [None, n]),
        ]
    )
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
