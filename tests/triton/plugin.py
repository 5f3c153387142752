"""pytest plugin: a session-scoped real Triton server (``triton_server``), registered in tests/conftest.py."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.triton.harness import TritonServer


@pytest.fixture(scope="session")
def triton_server() -> Iterator[TritonServer]:
    """A tritonserver on free 127.0.0.1 ports with an empty model repository (explicit model control).

    Tests write models into ``triton_server.repository`` and load/unload them through tritonclient.
    ``.http_url`` and ``.grpc_url`` are host:port strings.
    """
    repo = Path(tempfile.mkdtemp(prefix="fe-triton-repo-"))
    server = TritonServer(repo)
    try:
        server.start()
    except Exception as exc:  # pragma: no cover - depends on the machine
        server.cleanup()
        pytest.fail(f"tritonserver could not start: {exc}")
    try:
        yield server
    finally:
        server.cleanup()
