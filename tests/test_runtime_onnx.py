"""ONNX Runtime in process: providers read back from the session, threads set, one interface."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from inference.runtimes.base import Runtime
from inference.runtimes.onnx_runtime import OnnxRuntime
from inference.train import TrainingSet, fit


@pytest.fixture(scope="module")
def onnx_model() -> bytes:
    rng = np.random.default_rng(0)
    return fit(
        "pca", TrainingSet([f"f{i}" for i in range(4)], rng.normal(size=(200, 4)), np.arange(200))
    ).onnx


def test_cpu_session_describes_itself(onnx_model: bytes) -> None:
    rt = OnnxRuntime(onnx_model, providers=["CPUExecutionProvider"], intra_op_threads=2, name="m")
    assert isinstance(rt, Runtime)
    d = rt.describe()
    assert d["providers_in_use"] == ["CPUExecutionProvider"] and d["intra_op_threads"] == 2
    assert rt.session.get_session_options().intra_op_num_threads == 2
    out = rt.infer(np.zeros((3, 4)))
    assert out["score"].shape == (3,) and out["contributions"].shape == (3, 4)


def test_cuda_request_reports_what_really_runs(onnx_model: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """On a machine without a GPU a CUDA request runs on the CPU: the read-back says so, with a warning."""
    import onnxruntime as ort

    caplog.set_level(logging.WARNING, logger="inference.onnx")
    rt = OnnxRuntime(onnx_model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert rt.requested[0] == "CUDAExecutionProvider"
    assert rt.in_use == list(rt.session.get_providers())
    if "CUDAExecutionProvider" not in rt.in_use:
        assert rt.in_use == ["CPUExecutionProvider"]
        assert any("CUDA was requested" in r.getMessage() for r in caplog.records)
    del ort


def test_describe_shows_cuda_when_the_session_uses_it_fake_gpu(
    onnx_model: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GPU here: a fake session that reports CUDA shows that describe() trusts the read-back."""
    import onnxruntime as ort

    real = ort.InferenceSession

    class FakeGpuSession(real):  # type: ignore[misc, valid-type]
        def get_providers(self) -> list[str]:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(ort, "InferenceSession", FakeGpuSession)
    rt = OnnxRuntime(onnx_model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert rt.describe()["providers_in_use"][0] == "CUDAExecutionProvider"
