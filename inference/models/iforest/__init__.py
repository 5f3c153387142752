"""scikit-learn's IsolationForest through skl2onnx: the ``iforest`` model kind."""
