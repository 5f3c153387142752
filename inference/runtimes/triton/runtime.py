"""Triton Inference Server through tritonclient (gRPC or HTTP), with a fallback to local ONNX Runtime.

At start the served model's metadata (input name and width, output names, versions) is checked against the
package manifest: a mismatch is a configuration error (``ModelMismatchError``), never silently scored. A
request that fails is retried ``retries`` times; when Triton stays unreachable and a fallback is configured,
the runtime switches to it, emits a ``runtime`` event, and tries Triton again every ``recheck_s``.

``write_triton_model`` lays out a package for Triton's Python backend (``model.py`` wrapping onnxruntime,
``config.pbtxt`` with ``max_batch_size: 0``, the ONNX file under ``<version>/``): the tritonserver in the
nvidia-pytriton wheel has no ONNX Runtime backend. A Triton with the onnxruntime backend can serve the
``model.onnx`` directly instead.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.core.component import EventHook
from inference.runtimes.base import InferenceError, ModelMismatchError, Runtime

if TYPE_CHECKING:
    from inference.packages import ModelPackage
    from inference.settings import InferenceSettings

log = logging.getLogger("inference.triton")

MODEL_PY = '''"""Triton Python backend: an onnxruntime session over model.onnx (written by factory-edge)."""
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, self.input).as_numpy().astype(np.float32)
            values = self.session.run(self.outputs, {self.input: x})
            tensors = [pb_utils.Tensor(n, np.ascontiguousarray(v, dtype=np.float32))
                       for n, v in zip(self.outputs, values)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
'''


def write_triton_model(pkg: ModelPackage, repository: Path) -> Path:
    """Write ``pkg`` into a Triton model repository as ``<name>/<version>/`` for the Python backend."""
    n = len(pkg.features)
    version = pkg.version if pkg.version.isdigit() else "1"
    mdir = Path(repository) / pkg.name
    vdir = mdir / version
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "model.onnx").write_bytes(pkg.onnx)
    (vdir / "model.py").write_text(MODEL_PY)
    outs = pkg.output_names
    out_cfg = [f'  {{ name: "{outs.get("score", "score")}" data_type: TYPE_FP32 dims: [ -1 ] }}']
    if "contributions" in outs:
        out_cfg.append(f'  {{ name: "{outs["contributions"]}" data_type: TYPE_FP32 dims: [ -1, {n} ] }}')
    config = "\n".join(
        [
            f'name: "{pkg.name}"',
            'backend: "python"',
            "max_batch_size: 0",
            f'input [ {{ name: "{pkg.input_name}" data_type: TYPE_FP32 dims: [ -1, {n} ] }} ]',
            "output [",
            ",\n".join(out_cfg),
            "]",
            "instance_group [ { count: 1 kind: KIND_CPU } ]",
            f"version_policy: {{ specific: {{ versions: [ {version} ] }} }}",
            "",
        ]
    )
    (mdir / "config.pbtxt").write_text(config)
    return mdir


class TritonRuntime:
    """A model served by Triton. ``infer`` sends one request for the whole batch (all equipment of a tick)."""

    def __init__(
        self,
        pkg: ModelPackage,
        *,
        url: str,
        protocol: str = "grpc",
        timeout_s: float = 2.0,
        retries: int = 2,
        fallback: Runtime | None = None,
        on_event: EventHook | None = None,
        load: bool = False,
        recheck_s: float = 30.0,
    ) -> None:
        self.name = pkg.name
        self.pkg = pkg
        self.url = url
        self.protocol = protocol
        self.timeout_s = timeout_s
        self.retries = retries
        self.fallback = fallback
        self.on_event = on_event
        self.recheck_s = recheck_s
        self.version = pkg.version if pkg.version.isdigit() else "1"
        self.using_fallback = False
        self._retry_at = 0.0
        self.outputs = list(pkg.output_names.values())
        if protocol == "grpc":
            import tritonclient.grpc as client_mod
        elif protocol == "http":
            import tritonclient.http as client_mod  # type: ignore[no-redef]
        else:
            raise ValueError(f"protocol must be grpc or http, not {protocol!r}")
        self._mod: Any = client_mod
        if protocol == "http":
            self.client: Any = client_mod.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            self.client = client_mod.InferenceServerClient(url)
        try:
            if load:
                self.load_model()
            self.check_metadata()
        except ModelMismatchError:
            raise
        except Exception as exc:
            self._go_fallback(f"Triton at {url} is unreachable at start: {exc}")

    def load_model(self, timeout_s: float = 120.0) -> None:
        """Load the model in a server with explicit model control (loading can take seconds)."""
        if self.protocol == "grpc":
            self.client.load_model(self.name, client_timeout=timeout_s)
        else:
            loader = self._mod.InferenceServerClient(self.url, connection_timeout=self.timeout_s,
                                                     network_timeout=timeout_s)
            try:
                loader.load_model(self.name)
            finally:
                loader.close()

    # --- metadata
    def _metadata(self) -> dict[str, Any]:
        if self.protocol == "grpc":
            md: dict[str, Any] = self.client.get_model_metadata(
                self.name, client_timeout=self.timeout_s, as_json=True
            )
        else:
            md = self.client.get_model_metadata(self.name)
        return md

    def check_metadata(self) -> dict[str, Any]:
        md = self._metadata()
        n = len(self.pkg.features)
        inputs = md.get("inputs", [])
        problems: list[str] = []
        if len(inputs) != 1 or inputs[0].get("name") != self.pkg.input_name:
            problems.append(f"inputs {[i.get('name') for i in inputs]} != [{self.pkg.input_name!r}]")
        else:
            shape = [int(s) for s in inputs[0].get("shape", [])]
            if not shape or shape[-1] != n:
                problems.append(f"input width {shape[-1] if shape else None} != {n} features in the manifest")
        served = {o.get("name") for o in md.get("outputs", [])}
        lacking = [o for o in self.outputs if o not in served]
        if lacking:
            problems.append(f"outputs lack {lacking}")
        versions = [str(v) for v in md.get("versions", [])]
        if versions and self.version not in versions:
            problems.append(f"versions {versions} lack {self.version}")
        if problems:
            raise ModelMismatchError(
                f"Triton model {self.name} does not match package {self.name} "
                f"v{self.pkg.version}: " + "; ".join(problems)
            )
        return md

    # --- inference
    def _event(self, message: str, detail: dict[str, Any]) -> None:
        log.warning(message, extra=detail)
        if self.on_event is not None:
            self.on_event("runtime", message, detail)

    def _go_fallback(self, reason: str) -> None:
        if self.fallback is None:
            raise InferenceError(reason)
        if not self.using_fallback:
            self.using_fallback = True
            self._event(
                f"{reason}; falling back to {self.fallback.describe().get('runtime')}",
                {"model": self.name, "url": self.url, "fallback": True},
            )
        self._retry_at = time.monotonic() + self.recheck_s

    def _triton_infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        m = self._mod
        inp = m.InferInput(self.pkg.input_name, list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        outs = [m.InferRequestedOutput(o) for o in self.outputs]
        if self.protocol == "grpc":
            res = self.client.infer(
                self.name, [inp], model_version=self.version, outputs=outs, client_timeout=self.timeout_s
            )
        else:
            res = self.client.infer(
                self.name, [inp], model_version=self.version, outputs=outs, timeout=int(self.timeout_s * 1e6)
            )
        return {o: np.asarray(res.as_numpy(o)) for o in self.outputs}

    def infer(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        if self.using_fallback and time.monotonic() >= self._retry_at:
            try:
                self.check_metadata()
                self.using_fallback = False
                self._event(
                    f"Triton at {self.url} is back; serving {self.name} there again",
                    {"model": self.name, "url": self.url, "fallback": False},
                )
            except ModelMismatchError:
                raise
            except Exception:
                self._retry_at = time.monotonic() + self.recheck_s
        if self.using_fallback:
            assert self.fallback is not None
            return self.fallback.infer(x)
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return self._triton_infer(x)
            except Exception as exc:
                last = exc
                if attempt < self.retries:
                    time.sleep(min(0.05 * 2**attempt, 0.5))
        self._go_fallback(f"Triton inference of {self.name} failed {self.retries + 1} times: {last}")
        assert self.fallback is not None
        return self.fallback.infer(x)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "runtime": "triton",
            "model": self.name,
            "version": self.version,
            "url": self.url,
            "protocol": self.protocol,
            "using_fallback": self.using_fallback,
        }
        if self.fallback is not None:
            d["fallback"] = self.fallback.describe()
        return d

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def build(settings: InferenceSettings, pkg: Any, on_event: EventHook | None = None) -> TritonRuntime:
    """The runtime table's factory: the package on Triton, falling back to ONNX Runtime where configured."""
    from inference.runtimes.onnx.runtime import build as local

    return TritonRuntime(pkg, url=settings.triton_url, protocol=settings.triton_protocol,
                         timeout_s=settings.triton_timeout_s, retries=settings.triton_retries,
                         fallback=local(settings, pkg) if settings.triton_fallback_to_onnx else None,
                         on_event=on_event)
