"""Triton through tritonclient against the real tritonserver (nvidia-pytriton): load and unload through the
client, metadata checked against the manifest, gRPC and HTTP, and the fallback to ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.models.pca.kind import KIND as PCA
from inference.packages import ModelPackage, write_package
from inference.runtimes.base import InferenceError, ModelMismatchError
from inference.runtimes.onnx.runtime import OnnxRuntime
from inference.runtimes.triton.runtime import TritonRuntime, write_triton_model
from inference.train import fit
from inference.training_set import TrainingSet
from tests.fixtures.triton.harness import TritonServer, free_port

pytestmark = pytest.mark.triton


def _package(tmp: Path, name: str, n: int = 5) -> ModelPackage:
    rng = np.random.default_rng(1)
    ts = TrainingSet([f"f{i}" for i in range(n)], rng.normal(size=(200, n)), np.arange(200))
    r = fit(PCA, ts)
    return write_package(
        tmp / name,
        {
            "name": name,
            "version": "1",
            "features": ts.feature_names,
            "input": "features",
            "outputs": {"score": "score", "contributions": "contributions"},
            "threshold": r.threshold,
            "training": {},
            "metrics": r.metrics,
        },
        r.onnx,
    )


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_load_infer_unload_through_the_client(
    triton_server: TritonServer, tmp_path: Path, protocol: str
) -> None:
    name = f"m_{protocol}"
    pkg = _package(tmp_path, name)
    write_triton_model(pkg, triton_server.repository)
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    events: list[tuple[str, str, dict[str, Any]]] = []
    local = OnnxRuntime(pkg.onnx)
    rt = TritonRuntime(
        pkg,
        url=url,
        protocol=protocol,
        load=True,
        fallback=local,
        on_event=lambda *e: events.append(e),
        recheck_s=3600,
    )
    assert rt.client.is_model_ready(name)
    x = np.random.default_rng(2).normal(size=(256, 5)).astype(np.float32)
    got = rt.infer(x)
    want = local.infer(x)
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-5)
    np.testing.assert_allclose(got["contributions"], want["contributions"], rtol=1e-4, atol=1e-6)
    assert not rt.using_fallback and events == []
    # unloaded on the server: requests fail, the runtime falls back with an event
    rt.client.unload_model(name)
    rt.retries = 1
    out = rt.infer(x[:3])
    assert rt.using_fallback and rt.describe()["using_fallback"]
    np.testing.assert_allclose(out["score"], want["score"][:3], rtol=1e-6)
    assert events and events[0][0] == "runtime" and "falling back" in events[0][1]


def test_metadata_mismatch_is_an_error(triton_server: TritonServer, tmp_path: Path) -> None:
    served = _package(tmp_path, "m_width", n=5)
    write_triton_model(served, triton_server.repository)
    wanted = _package(tmp_path / "other", "m_width", n=6)  # same name, 6 features
    with pytest.raises(ModelMismatchError, match="input width 5 != 6"):
        TritonRuntime(wanted, url=triton_server.grpc_url, load=True, fallback=OnnxRuntime(wanted.onnx))
    triton_server_client_unload(triton_server, "m_width")


def triton_server_client_unload(server: TritonServer, name: str) -> None:
    import tritonclient.http as http

    http.InferenceServerClient(server.http_url).unload_model(name)


def test_unreachable_triton_falls_back_at_start(tmp_path: Path) -> None:
    pkg = _package(tmp_path, "m_gone")
    events: list[tuple[str, str, dict[str, Any]]] = []
    url = f"127.0.0.1:{free_port()}"
    rt = TritonRuntime(
        pkg,
        url=url,
        protocol="grpc",
        timeout_s=0.5,
        fallback=OnnxRuntime(pkg.onnx),
        on_event=lambda *e: events.append(e),
    )
    assert rt.using_fallback and events[0][2]["fallback"] is True
    assert rt.infer(np.zeros((2, 5)))["score"].shape == (2,)
    with pytest.raises(InferenceError):
        TritonRuntime(pkg, url=url, protocol="http", timeout_s=0.5, fallback=None)
