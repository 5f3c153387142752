"""Inference config section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.core.settings import Section
from inference.lifecycle_settings import LifecycleSettings


class SparkplugSettings(Section):
    """Insights as a Sparkplug B edge node (``[inference.sparkplug]``), on the appliance's broker
    (``[broker]``: URL, protocol, credentials, TLS; ``topic_prefix`` does not apply: the namespace is
    fixed). The last bdSeq is kept in ``spool.dir``."""

    enabled: bool = Field(False, description="publish insights as a Sparkplug B edge node")
    group_id: str = Field("factory-edge", pattern=r"^[^/+#]+$", description="Sparkplug group id")
    edge_node_id: str = Field("", pattern=r"^[^/+#]*$", description="edge node id; empty = box.id")
    keep_json: bool = Field(True, description="also keep publishing the JSON insights on the UNS topics")


class InferenceSettings(Section):
    """``[inference]``. The window defaults here are the one source of truth (``WindowSpec`` takes them)."""

    enabled: bool = True
    window_s: float = Field(10.0, gt=0, description="window length in seconds (event time)")
    hop_s: float = Field(5.0, gt=0, description="a window starts every hop_s seconds (<= window_s)")
    min_good_fraction: float = Field(0.8, ge=0, le=1)
    models_dir: Path = Path("/var/lib/factory-edge/models")
    runtime: Literal["onnx", "triton"] = "onnx"
    providers: list[str] = Field(default_factory=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    intra_op_threads: int = Field(1, ge=1)
    triton_url: str = "127.0.0.1:8001"
    triton_protocol: Literal["grpc", "http"] = "grpc"
    triton_fallback_to_onnx: bool = True
    # windows and features
    grid_hz: float = Field(2.0, gt=0, description="rate of the grid each equipment's tags are aligned to")
    max_hold_s: float = Field(5.0, ge=0, description="a value is held on the grid at most this long")
    allowed_lateness_s: float = Field(2.0, ge=0, description="event-time slack before a window closes")
    clock: Literal["wall", "event"] = Field(
        "wall",
        description="what closes windows: 'wall' = the watermark, or the wall clock idle_close_s after an "
        "equipment went quiet (live data); 'event' = only the watermark (samples' own time), and every open "
        "window at stop: for replaying history (set quality.accept_past too)",
    )
    idle_close_s: float = Field(
        30.0, gt=0, description="clock = 'wall': close an equipment's windows after this wall time"
    )
    signal_key: Literal["tag", "measure"] = "tag"
    spectral_signals: list[str] = Field(default_factory=list, description="signals that get FFT features")
    n_bands: int = Field(8, ge=1)
    feature_threads: int = Field(1, ge=1)
    tick_s: float = Field(1.0, gt=0)
    models: list[str] = Field(default_factory=list, description="models to run; empty = every promoted one")
    # insights
    warning_ratio: float = Field(0.8, gt=0, description="warning at score >= ratio x threshold")
    hysteresis_windows: int = Field(2, ge=1, description="windows in a row to raise or clear a level")
    clear_ratio: float = Field(0.9, gt=0, description="a level clears below ratio x its entry score")
    top_features: int = Field(3, ge=1)
    # triton
    triton_timeout_s: float = Field(2.0, gt=0)
    triton_retries: int = Field(2, ge=0)
    # insights as a Sparkplug B edge node (optional)
    sparkplug: SparkplugSettings = Field(default_factory=lambda: SparkplugSettings.model_validate({}))
    # retraining triggers and the candidate's path to champion
    lifecycle: LifecycleSettings = Field(default_factory=lambda: LifecycleSettings.model_validate({}))
