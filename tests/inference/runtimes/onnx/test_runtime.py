"""ONNX Runtime in process: providers read back from the session, threads set, one interface."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from inference.models.pca.kind import KIND as PCA
from inference.runtimes.base import Runtime
from inference.runtimes.onnx.runtime import OnnxRuntime
from inference.train import fit
from inference.training_set import TrainingSet


@pytest.fixture(scope="module")
def onnx_model() -> bytes:
    rng = np.random.default_rng(0)
    return fit(
        PCA, TrainingSet([f"f{i}" for i in range(4)], rng.normal(size=(200, 4)), np.arange(200))
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


def test_cuda_request_without_a_gpu_runs_on_cpu_without_the_library_error(
    onnx_model: bytes, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """This machine has no GPU: CUDA/TensorRT are left out of the request, so onnxruntime prints no
    "Failed to load library libonnxruntime_providers_cuda.so" error; one warning says why."""
    from inference.runtimes.onnx.runtime import gpu_present

    if gpu_present():
        pytest.skip("a GPU is present here")
    caplog.set_level(logging.WARNING, logger="inference.onnx")
    capfd.readouterr()
    rt = OnnxRuntime(
        onnx_model, providers=["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    err = capfd.readouterr().err
    assert rt.describe()["providers_in_use"] == ["CPUExecutionProvider"]
    assert rt.describe()["providers_requested"][:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert "[E:onnxruntime" not in err and "libonnxruntime_providers_cuda" not in err, err
    assert "Failed to create CUDAExecutionProvider" not in err, err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no GPU is present" in warnings[0] and "CPUExecutionProvider" in warnings[0]


def test_cuda_is_requested_when_a_gpu_is_present_fake_gpu(
    onnx_model: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No GPU here: with the GPU check faked to say yes, the CUDA request reaches onnxruntime unchanged."""
    import onnxruntime as ort

    from inference.runtimes.onnx import runtime as onnx_runtime

    real = ort.InferenceSession
    seen: list[list[str]] = []

    class FakeGpuSession(real):  # type: ignore[misc, valid-type]
        def __init__(
            self, src: object, sess_options: object = None, providers: list[str] | None = None
        ) -> None:
            seen.append(list(providers or []))
            super().__init__(src, sess_options=sess_options, providers=["CPUExecutionProvider"])

        def get_providers(self) -> list[str]:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(onnx_runtime, "gpu_present", lambda: True)
    monkeypatch.setattr(ort, "InferenceSession", FakeGpuSession)
    caplog.set_level(logging.WARNING, logger="inference.onnx")
    rt = OnnxRuntime(onnx_model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert seen == [["CUDAExecutionProvider", "CPUExecutionProvider"]]
    assert rt.in_use[0] == "CUDAExecutionProvider"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class _FakeDriver:
    def __init__(self, init_rc: int, devices: int) -> None:
        self.init_rc, self.devices = init_rc, devices

    def cuInit(self, flags: int) -> int:  # the CUDA driver API's name
        return self.init_rc

    def cuDeviceGetCount(self, ptr: object) -> int:
        ptr._obj.value = self.devices  # type: ignore[attr-defined]
        return 0


def test_gpu_check_follows_the_cuda_driver_fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver library is faked (no GPU here): missing library, no device, cuInit error, one device."""
    import ctypes

    from inference.runtimes.onnx.runtime import gpu_present

    check = gpu_present.__wrapped__

    def missing(name: str) -> object:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert check() is False
    monkeypatch.setattr(ctypes, "CDLL", lambda name: _FakeDriver(0, 0))
    assert check() is False
    monkeypatch.setattr(ctypes, "CDLL", lambda name: _FakeDriver(100, 1))  # CUDA_ERROR_NO_DEVICE
    assert check() is False
    monkeypatch.setattr(ctypes, "CDLL", lambda name: _FakeDriver(0, 1))
    assert check() is True
