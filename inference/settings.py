"""Inference config section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.settings import Section


class InferenceSettings(Section):
    enabled: bool = True
    window_s: float = Field(10.0, gt=0)
    hop_s: float = Field(10.0, gt=0)
    min_good_fraction: float = Field(0.8, ge=0, le=1)
    models_dir: Path = Path("/var/lib/factory-edge/models")
    runtime: Literal["onnx", "triton"] = "onnx"
    providers: list[str] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    intra_op_threads: int = Field(1, ge=1)
    triton_url: str = "127.0.0.1:8001"
    triton_protocol: Literal["grpc", "http"] = "grpc"
    triton_fallback_to_onnx: bool = True
