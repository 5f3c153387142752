"""Triton Inference Server harness for tests and benchmarks (nvidia-pytriton's tritonserver binary)."""
