"""ONNX Runtime in process. Providers come from config; the providers actually in use are read back from
``session.get_providers()``: onnxruntime-gpu on a machine without a GPU accepts a CUDA request and silently
runs on the CPU, so only the read-back is trusted (logged, and shown by ``describe``).

Before asking for CUDA or TensorRT the runtime checks that a GPU is usable (``gpu_present``: the CUDA driver
library loads and reports at least one device); without one those providers are left out of the request,
so onnxruntime does not print its "Failed to load library libonnxruntime_providers_cuda.so" error at every
session, and one warning says that CUDA was configured but the session runs on the CPU."""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edge.core.component import EventHook
    from inference.settings import InferenceSettings

log = logging.getLogger("inference.onnx")

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
_CUDA_LIBRARIES = ("libcuda.so.1", "libcuda.so")


@functools.cache
def gpu_present() -> bool:
    """True when an NVIDIA GPU is usable: the CUDA driver library loads, ``cuInit`` succeeds and
    ``cuDeviceGetCount`` reports a device (works in containers and on Jetson, where the driver nodes differ).
    Checked once per process."""
    for name in _CUDA_LIBRARIES:
        try:
            cuda = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if cuda.cuInit(0) != 0:
                return False
            count = ctypes.c_int(0)
            return bool(cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0)
        except (AttributeError, OSError):
            return False
    return False


class OnnxRuntime:
    def __init__(
        self,
        model: Path | bytes,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        name: str = "onnx",
    ) -> None:
        import onnxruntime as ort

        self.name = name
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads)
        opts.inter_op_num_threads = int(inter_op_threads)
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        available = ort.get_available_providers()
        requested = [p for p in providers if p in available]
        no_gpu = any(p in GPU_PROVIDERS for p in requested) and not gpu_present()
        if no_gpu:
            requested = [p for p in requested if p not in GPU_PROVIDERS]
        requested = requested or ["CPUExecutionProvider"]
        src = str(model) if isinstance(model, Path) else model
        self.session = ort.InferenceSession(src, sess_options=opts, providers=requested)
        self.requested = list(providers)
        self.in_use: list[str] = list(self.session.get_providers())
        self.intra_op_threads = int(intra_op_threads)
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_dtype = np.float64 if "double" in inp.type else np.float32
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        if no_gpu:
            log.warning(
                "CUDA was requested (configured providers %s) but no GPU is present: the session runs on %s",
                ", ".join(self.requested),
                self.in_use[0],
                extra={"model": name, "requested": self.requested, "in_use": self.in_use},
            )
        elif "CUDAExecutionProvider" in self.requested and "CUDAExecutionProvider" not in self.in_use:
            log.warning(
                "CUDA was requested but the session runs on %s",
                self.in_use[0],
                extra={"requested": self.requested, "in_use": self.in_use},
            )
        log.info(
            "onnxruntime session",
            extra={
                "model": name,
                "providers_requested": self.requested,
                "providers_in_use": self.in_use,
                "intra_op_threads": self.intra_op_threads,
            },
        )

    def infer(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(inputs, dtype=self.input_dtype)
        outs = self.session.run(self.output_names, {self.input_name: x})
        return {n: np.asarray(o) for n, o in zip(self.output_names, outs, strict=True)}

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": "onnxruntime",
            "model": self.name,
            "providers_requested": self.requested,
            "providers_in_use": self.in_use,
            "intra_op_threads": self.intra_op_threads,
            "input": self.input_name,
            "outputs": self.output_names,
        }

    def close(self) -> None:
        pass


def build(settings: InferenceSettings, pkg: Any, on_event: EventHook | None = None) -> OnnxRuntime:
    """The runtime table's factory: the package's graph in process, with the configured providers."""
    return OnnxRuntime(pkg.onnx, providers=settings.providers, intra_op_threads=settings.intra_op_threads,
                       name=pkg.name)
