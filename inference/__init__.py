"""From windows to insights: Numba feature kernels, ONNX Runtime and Triton runtimes, model packages."""
