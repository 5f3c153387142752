"""Accounting: counters, the Prometheus endpoint, the state file, and ``edge stats``."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from edge.app.cli import build_parser
from edge.core.metrics import Metrics, read_state_file
from edge.sinks.metrics.server import MetricsServer


def main(argv: list[str]) -> int:
    """``edge ARGV`` without edge.app.cli.main's logging set-up (which would keep pytest's captured
    stderr)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def test_counters_snapshot_and_prometheus_text() -> None:
    m = Metrics()
    m.inc("historian", "received", 100)
    m.inc("historian", "committed", 90)
    m.inc("historian", "rejected", 3, reason="write_error")
    m.inc("historian", "rejected", 2, reason='bad "quote"')
    m.set_gauge("spool_bytes", 4096, stage="historian")
    snap = m.snapshot()
    assert snap["counters"]["historian"] == {
        "received": 100, "committed": 90, "rejected": {"write_error": 3, 'bad "quote"': 2}}
    assert m.get("historian", "rejected") == 5
    text = m.render_prometheus()
    assert '# TYPE factory_edge_received_rows_total counter' in text
    assert 'factory_edge_received_rows_total{stage="historian"} 100' in text
    assert 'factory_edge_rejected_rows_total{stage="historian",reason="write_error"} 3' in text
    assert 'reason="bad \\"quote\\""' in text
    assert 'factory_edge_spool_bytes{stage="historian"} 4096' in text


async def test_endpoint_and_state_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = Metrics()
    m.inc("ingest.mqtt", "received", 7)
    m.inc("outbox-publisher", "published", 3)
    state = tmp_path / "stats.json"
    server = MetricsServer(m, listen="127.0.0.1:0", state_file=state, state_interval_s=0.05)
    task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.ready.wait(), 5)
    url = f"http://127.0.0.1:{server.bound_port}"

    def get(path: str) -> tuple[str, bytes]:
        with urllib.request.urlopen(url + path, timeout=5) as resp:
            return resp.headers["Content-Type"], resp.read()

    ctype, body = await asyncio.to_thread(get, "/metrics")
    assert ctype.startswith("text/plain; version=0.0.4")
    assert b'factory_edge_received_rows_total{stage="ingest.mqtt"} 7' in body
    _, body = await asyncio.to_thread(get, "/stats")
    assert json.loads(body)["counters"]["outbox-publisher"]["published"] == 3

    m.inc("ingest.mqtt", "received", 5)
    for _ in range(100):
        if state.exists() and read_state_file(state)["counters"]["ingest.mqtt"]["received"] == 12:
            break
        await asyncio.sleep(0.05)
    assert read_state_file(state)["counters"]["ingest.mqtt"]["received"] == 12

    rc = await asyncio.to_thread(main, ["stats", "--url", url])
    out = capsys.readouterr().out
    assert rc == 0 and "ingest.mqtt" in out and "12" in out
    await server.stop()
    await asyncio.wait_for(task, 5)

    rc = main(["stats", "--state-file", str(state), "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["counters"]["ingest.mqtt"]["received"] == 12
    assert main(["stats", "--state-file", str(tmp_path / "nothing.json")]) == 1
    assert main(["stats", "--url", url]) == 1  # stopped: nothing answers
