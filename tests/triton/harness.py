"""Run the real ``tritonserver`` 2.51 from the nvidia-pytriton wheel, in its own virtual environment.

The wheel's server has the Python backend only; models are ``model.py`` files wrapping onnxruntime (see
``inference.runtimes.triton_runtime.write_triton_model``). The venv ``.triton-venv`` (gitignored) is created
on first use with ``nvidia-pytriton==0.7.0``, ``numpy<2`` and ``onnxruntime`` (CPU). The server binds
127.0.0.1 on free ports, runs with ``--model-control-mode=explicit`` (tests load and unload models through the
client), and ``LD_LIBRARY_PATH`` = the venv Python's LIBDIR + ``site-packages/nvidia_pytriton.libs``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edge.ports import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".triton-venv"
REQUIREMENTS = ["nvidia-pytriton==0.7.0", "numpy==1.26.4", "onnxruntime==1.32.0"]  # the versions tested


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """Create ``.triton-venv`` with pip if it is missing; return its python."""
    py = venv_python()
    if not (py.exists() and _site_packages(py).joinpath("pytriton").exists()):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    return py


def _site_packages(py: Path) -> Path:
    out = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(out)


def _libdir(py: Path) -> str:
    return subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@dataclass
class TritonServer:
    repository: Path
    http_port: int = 0
    grpc_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fe-triton-")))

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 60.0) -> TritonServer:
        py = ensure_venv()
        sp = _site_packages(py)
        dist = sp / "pytriton" / "tritonserver"
        backends = self.workdir / "backends"
        shutil.copytree(dist / "backends", backends, dirs_exist_ok=True)
        minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
        venv_minor = (
            subprocess.run(
                [str(py), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            or minor
        )
        shutil.copy(
            dist / "python_backend_stubs" / venv_minor / "triton_python_backend_stub",
            backends / "python" / "triton_python_backend_stub",
        )
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        metrics_port = free_port()
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(
            p for p in (_libdir(py), str(sp / "nvidia_pytriton.libs"), env.get("LD_LIBRARY_PATH", "")) if p
        )
        env["PATH"] = f"{py.parent}:{env.get('PATH', '')}"
        env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU here; keep the CPU path explicit
        cmd = [
            str(dist / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            "--model-control-mode=explicit",
            f"--backend-directory={backends}",
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=false",
            f"--metrics-port={metrics_port}",
            "--log-verbose=0",
            "--exit-timeout-secs=5",
            "--strict-readiness=false",
        ]
        self.log_path = self.workdir / "tritonserver.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/live", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tritonserver did not come up in {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, 10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
