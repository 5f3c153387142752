"""The metrics endpoint's text passes ``promtool check metrics`` (Prometheus' own parser and linter): every
family has HELP and TYPE, counters end in ``_total``, labels are escaped. Needs Debian's ``prometheus``
package (``.ci/run`` installs it)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.request

import pytest

from edge.core.metrics import Metrics
from edge.sinks.metrics.server import MetricsServer


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install -y prometheus; .ci/run installs it)")
    return path


def check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=30)


async def test_the_endpoints_text_passes_promtool() -> None:
    m = Metrics()
    m.inc("historian", "committed", 90)
    m.inc("historian", "rejected", 3, reason="write_error")
    m.inc("ingest.mqtt", "rejected", 2, reason='bad "quote"\\n')
    m.inc("spool", "dropped", 0.5, reason="spool_full")
    m.set_gauge("spool_bytes", 4096, stage="historian")
    m.set_gauge("historian_up", 1, stage="historian")
    server = MetricsServer(m, listen="127.0.0.1:0")
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.ready.wait(), 5)

        def get() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.bound_port}/metrics", timeout=5) as r:
                return str(r.read().decode())

        body = await asyncio.to_thread(get)
    finally:
        await server.stop()
        await asyncio.wait_for(task, 5)
    r = check(body)
    assert r.returncode == 0, r.stdout + r.stderr
    assert body.count("# HELP ") == body.count("# TYPE ") == 6


def test_promtool_refuses_a_family_without_help() -> None:
    """The check can fail: the same text without its HELP lines is refused."""
    m = Metrics()
    m.inc("historian", "committed", 90)
    text = "\n".join(line for line in m.render_prometheus().splitlines()
                     if not line.startswith("# HELP")) + "\n"
    r = check(text)
    assert r.returncode != 0 and "no help text" in r.stdout + r.stderr
