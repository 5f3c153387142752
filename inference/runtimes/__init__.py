"""Model runtimes behind one interface (``inference.runtimes.base.Runtime``): ONNX Runtime, Triton."""
