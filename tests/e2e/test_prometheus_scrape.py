"""Ops conventions: the appliance's metrics endpoint scraped by a real Prometheus.

``edge demo`` runs (real PostgreSQL and Mosquitto, the simulated plant); once its metrics endpoint is up, a
Prometheus of the test's own (temporary config and storage, free ports, 1 s scrape interval) scrapes it.
The test then asks Prometheus' HTTP API whether the target is healthy (the exposition passed its parser),
what types it recorded for the series (``counter`` for ``*_rows_total``, ``gauge`` otherwise), and whether
the values it stored are the endpoint's; ``promtool check metrics`` lints the endpoint's text as well.
Needs Debian's ``prometheus`` package (it brings ``promtool``; ``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edge.core.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "factory_edge_"


def binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install -y prometheus; .ci/run installs it)")
    return path


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


def api(base: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    doc = json.loads(http_get(f"{base}/api/v1/{path}{query}"))
    assert doc["status"] == "success", doc
    return doc["data"]


def wait_for(cond: Any, timeout: float, what: str, proc: subprocess.Popen[Any] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        try:
            got = cond()
        except (OSError, ValueError, KeyError):
            got = None
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def exposition(text: str) -> tuple[dict[str, str], dict[str, float]]:
    """The endpoint's text: ``# TYPE`` of every metric family, and the value of every unlabelled series
    and of every series by its full ``name{labels}`` text."""
    types: dict[str, str] = {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return types, values


def test_a_real_prometheus_scrapes_the_appliance_and_keeps_the_types(
        tmp_path: Path, pg_dsn: str, mqtt_server_url: str) -> None:
    prometheus, promtool = binary("prometheus"), binary("promtool")
    state = tmp_path / "demo.json"
    env = {**os.environ, "FE_DEMO_STATE": str(state)}
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [sys.executable, "-m", "edge.app.cli", "demo", "--duration", "40", "--historian-dsn", pg_dsn,
         "--mqtt-url", mqtt_server_url, "--data-dir", str(tmp_path / "demo"), "--baseline-minutes", "5"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env)
    prom: subprocess.Popen[bytes] | None = None
    try:
        listen = wait_for(lambda: json.loads(state.read_text())["metrics"], 180, "the demo's state file",
                          demo)
        endpoint = f"http://{listen}/metrics"
        wait_for(lambda: b"factory_edge_received_rows_total" in http_get(endpoint), 60,
                 "rows counted at the endpoint", demo)

        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({  # YAML is a superset of JSON
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "factory-edge", "static_configs": [{"targets": [listen]}]}],
        }))
        prom = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{base}/-/ready").startswith(b"Prometheus"), 60, "Prometheus ready", prom)

        def healthy_target() -> dict[str, Any] | None:
            targets = api(base, "targets")["activeTargets"]
            up = [t for t in targets if t["scrapeUrl"] == endpoint and t["health"] == "up"]
            return up[0] if up else None

        target = wait_for(healthy_target, 60, "a healthy scrape of the endpoint", prom)
        assert target["lastError"] == ""
        # a few scrapes while the demo counts on
        scrapes = "count_over_time(factory_edge_start_time_seconds[1m])"
        wait_for(lambda: float(api(base, "query", query=scrapes)["result"][0]["value"][1]) >= 3, 60,
                 "three scrapes", prom)

        body = http_get(endpoint).decode()
        types, values = exposition(body)
        lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True,
                              timeout=30)
        assert lint.returncode == 0, lint.stdout + lint.stderr

        metadata: dict[str, list[dict[str, str]]] = api(base, "metadata")
        ours = {name: entries[0]["type"] for name, entries in metadata.items() if name.startswith(PREFIX)}
        assert ours == types  # every family arrived, with the type the endpoint declared
        assert {k for k, v in ours.items() if v == "counter"} == {k for k in ours if k.endswith("_total")}
        assert ours["factory_edge_received_rows_total"] == "counter"
        assert ours["factory_edge_start_time_seconds"] == "gauge"

        stored = api(base, "query", query="factory_edge_received_rows_total")["result"]
        stages = {r["metric"]["stage"] for r in stored}
        assert stages and all(r["metric"]["job"] == "factory-edge" for r in stored)
        for r in stored:  # a counter Prometheus holds is at most what the endpoint says now
            series = f'factory_edge_received_rows_total{{stage="{r["metric"]["stage"]}"}}'
            assert 0 < float(r["value"][1]) <= values[series], (series, r)
        start = api(base, "query", query="factory_edge_start_time_seconds")["result"]
        assert float(start[0]["value"][1]) == pytest.approx(values["factory_edge_start_time_seconds"])
        print(f"\nPrometheus scraped {endpoint}: {len(ours)} families ({sorted(set(ours.values()))}), "
              f"received rows by stage {sorted(stages)}; promtool check metrics: clean")
    finally:
        if prom is not None:
            prom.terminate()
            prom.wait(20)
        try:
            demo.wait(180)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, log.read_text(errors="replace")[-3000:]
