"""The OPC-UA source against real asyncua servers: data, quality, naming, reconnect, certificates, browse."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua

from edge.core.datamodel import EVENTS, SAMPLES, Quality
from edge.core.envelope import Envelope
from edge.simulator.opcua_server import SIM_NAMESPACE, PlantServer
from edge.simulator.plant import Plant, PlantConfig
from ingest.settings import OpcUaSourceSettings
from ingest.sources.opcua.certs import CertificateRefused, Pki
from ingest.sources.opcua.nodes import NodeNameError, parse_node_name
from ingest.sources.opcua.source import OpcUaSource
from tests.fixtures.services import free_port

REPO = Path(__file__).resolve().parents[4]
EDGE = [sys.executable, "-m", "edge.app.cli"]


class Collector:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def __call__(self, env: Envelope) -> None:
        self.envelopes.append(env)

    def samples(self) -> list[dict[str, Any]]:
        return [r for e in self.envelopes if e.kind == "samples" for r in e.batch.to_pylist()]

    def events(self) -> list[dict[str, Any]]:
        return [r for e in self.envelopes if e.kind == "events" for r in e.batch.to_pylist()]


def settings(endpoint: str, tags: list[str], **kw: Any) -> OpcUaSourceSettings:
    nodes = [{"tag": t, "node": f"nsu={SIM_NAMESPACE};s={t}"} for t in tags]
    return OpcUaSourceSettings.model_validate({"name": "sim", "endpoint": endpoint, "nodes": nodes,
                                               "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, **kw})


async def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def plant_server() -> AsyncIterator[PlantServer]:
    plant = Plant(PlantConfig(lines=1, machines=2, seed=2))
    async with PlantServer(plant, port=free_port(), namespace_shift=2) as server:
        yield server


async def run_source(source: OpcUaSource) -> asyncio.Task[None]:
    return asyncio.create_task(source.run())


async def test_values_flow_into_samples_envelopes(plant_server: PlantServer) -> None:
    tags = plant_server.plant.tag_names
    out = Collector()
    source = OpcUaSource(settings(plant_server.endpoint, tags), out, batch_ms=50)
    task = await run_source(source)
    try:
        await wait_for(lambda: {r["tag"] for r in out.samples()} == set(tags), 10, "every tag")
        await asyncio.sleep(1.0)
    finally:
        await source.stop()
        await task
    envs = [e for e in out.envelopes if e.kind == "samples"]
    assert all(e.batch.schema.equals(SAMPLES) for e in envs)
    assert len({e.batch_id for e in envs}) == len(envs)  # distinct ids per batch
    rows = out.samples()
    assert all(r["quality"] == Quality.GOOD and r["source"] == "sim" for r in rows)
    # source timestamps: on the plant's 100 ms grid, before (or at) the time we received them
    for r in rows:
        ts_us = int(r["ts"].timestamp() * 1e6)
        assert (ts_us - plant_server.plant.start_us) % 100_000 in (0, 1, 99_999)  # type: ignore[operator]
        assert r["ts"] <= r["recv_ts"]
    per_tag = {t: [r["value"] for r in rows if r["tag"] == t] for t in tags}
    assert all(len(v) >= 5 for v in per_tag.values())
    assert 5 < sum(per_tag["line1.press1.temperature"]) / len(per_tag["line1.press1.temperature"]) < 120


async def test_receive_timestamp_mode_and_batch_rows(plant_server: PlantServer) -> None:
    tags = plant_server.plant.tag_names
    out = Collector()
    source = OpcUaSource(settings(plant_server.endpoint, tags, timestamp="receive"), out,
                         batch_ms=10_000, batch_rows=16)
    task = await run_source(source)
    try:
        await wait_for(lambda: len(out.envelopes) >= 3, 10, "three batches by row count")
    finally:
        await source.stop()
        await task
    first = out.envelopes[0].batch
    assert first.num_rows >= 16  # flushed on rows, not on the 10 s timer
    assert all(r["ts"] == r["recv_ts"] for r in out.samples())


async def test_status_codes_become_quality(plant_server: PlantServer) -> None:
    tag = "line1.press1.temperature"
    out = Collector()
    source = OpcUaSource(settings(plant_server.endpoint, [tag]), out, batch_ms=20)
    # freeze the plant's own writes for this tag by writing behind it with explicit status codes
    task = await run_source(source)
    try:
        await wait_for(lambda: len(out.samples()) > 0, 10, "first value")
        plant_server.request_stop()  # stop ticking; the server stays up
        await asyncio.sleep(0.3)
        server = plant_server.server
        assert server is not None
        nodeid = ua.NodeId(tag, plant_server.ns_index)  # type: ignore[arg-type]
        codes: Any = ua.StatusCodes  # type: ignore[attr-defined]
        for code, value in ((codes.UncertainLastUsableValue, 41.0),
                            (codes.BadSensorFailure, None), (codes.Good, 42.5)):
            dv = ua.DataValue(ua.Variant(value, ua.VariantType.Double if value is not None else
                                         ua.VariantType.Null), StatusCode=ua.StatusCode(code))  # type: ignore[arg-type]
            await server.write_attribute_value(nodeid, dv)
            await asyncio.sleep(0.4)
        await wait_for(lambda: any(r["value"] == 42.5 for r in out.samples()), 5, "last write")
    finally:
        await source.stop()
        await task
    rows = out.samples()
    qualities = [r["quality"] for r in rows]
    assert Quality.UNCERTAIN in qualities and Quality.BAD in qualities
    bad = next(r for r in rows if r["quality"] == Quality.BAD)
    assert bad["value"] is None or bad["value"] != bad["value"]  # NaN or null: no value


async def test_browse_path_and_namespace_index_resolved_from_uri(plant_server: PlantServer) -> None:
    assert plant_server.ns_index == 4  # two padding namespaces pushed ours from 2 to 4
    out = Collector()
    cfg = OpcUaSourceSettings.model_validate({
        "name": "sim", "endpoint": plant_server.endpoint, "nodes": [
            {"tag": "by_path",
             "node": f"nsu={SIM_NAMESPACE};/Objects/acme/plant1/area1/line1/press2/current"},
            {"tag": "by_id", "node": f"nsu={SIM_NAMESPACE};s=line1.press2.current"},
            {"tag": "server_state", "node": "i=2259"},
        ]})
    source = OpcUaSource(cfg, out, batch_ms=20)
    task = await run_source(source)
    try:
        await wait_for(lambda: {"by_path", "by_id"} <= {r["tag"] for r in out.samples()}, 10, "both tags")
    finally:
        await source.stop()
        await task
    assert source.resolved["by_path"] == source.resolved["by_id"] == "ns=4;s=line1.press2.current"
    with pytest.raises(NodeNameError, match="bare namespace index"):
        parse_node_name("ns=2;s=line1.press1.vibration")


def _spawn_sim(port: int, shift: int, log: Path) -> Any:
    return asyncio.create_subprocess_exec(
        *EDGE, "simulate", "--lines", "1", "--machines", "2", "--opcua-port", str(port), "--faults", "none",
        "--namespace-shift", str(shift), cwd=REPO, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def _wait_serving(log: Path, count: int, timeout: float = 30) -> None:
    await wait_for(lambda: log.read_text(errors="replace").count("serving ") >= count, timeout, "simulator")


async def test_reconnects_after_server_process_restart_and_records_the_gap(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "sim.log"
    proc = await _spawn_sim(port, 0, log)
    out = Collector()
    tags = ["line1.press1.vibration", "line1.press2.temperature"]
    source = OpcUaSource(settings(f"opc.tcp://127.0.0.1:{port}", tags), out, batch_ms=50)
    task: asyncio.Task[None] | None = None
    try:
        await _wait_serving(log, 1)
        task = await run_source(source)
        await wait_for(lambda: len(out.samples()) >= 10, 15, "values before the restart")
        first_ns = source.resolved[tags[0]]
        proc.send_signal(signal.SIGKILL)  # a crash, not a polite shutdown
        await proc.wait()
        killed_at = time.time()
        await asyncio.sleep(1.5)
        n_before = len(out.samples())
        # the restarted server registers its namespace at another index
        proc = await _spawn_sim(port, 3, log)
        await _wait_serving(log, 2)
        restarted_at = time.time()
        await wait_for(lambda: len(out.samples()) > n_before + 10, 10, "values within 10 s of the restart")
        await wait_for(lambda: len(out.events()) >= 1, 5, "the gap event")
        second_ns = source.resolved[tags[0]]
    finally:
        await source.stop()
        if task is not None:
            await task
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    assert first_ns.startswith("ns=2;") and second_ns.startswith("ns=5;")
    assert source.connects == 2
    ev_env = next(e for e in out.envelopes if e.kind == "events")
    assert ev_env.batch.schema.equals(EVENTS)
    ev = out.events()[0]
    assert ev["kind"] == "connection" and ev["source"] == "sim"
    detail = json.loads(ev["detail"])
    assert detail["start_us"] <= int(killed_at * 1e6) + 500_000
    assert detail["end_us"] >= int(restarted_at * 1e6) - 500_000
    assert detail["cause"]
    after = [r for r in out.samples() if r["recv_ts"].timestamp() * 1e6 >= detail["end_us"]]
    assert {r["tag"] for r in after} == set(tags)


async def _secured_server(tmp_path: Path) -> PlantServer:
    plant = Plant(PlantConfig(lines=1, machines=1, seed=3))
    return PlantServer(plant, port=free_port(), security=["Basic256Sha256_SignAndEncrypt"],
                       cert_dir=tmp_path / "server-pki")


def _secure_settings(server: PlantServer, pki: Path, **kw: Any) -> OpcUaSourceSettings:
    return settings(server.endpoint, ["line1.press1.vibration"], security_mode="SignAndEncrypt",
                    security_policy="Basic256Sha256", pki_dir=str(pki), **kw)


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*EDGE, *args, cwd=REPO, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_unknown_server_certificate_is_refused_then_trusted_by_command(tmp_path: Path) -> None:
    pki = tmp_path / "client-pki"
    async with await _secured_server(tmp_path) as server:
        source = OpcUaSource(_secure_settings(server, pki), Collector())
        with pytest.raises(CertificateRefused) as refused:
            await source.connect()
        msg = str(refused.value)
        thumb = refused.value.info.thumbprint
        assert thumb in msg and "factory-edge-sim" in msg
        assert f"edge certs trust {thumb} --pki-dir {pki}" in msg
        assert (pki / "rejected" / "certs" / f"{thumb}.der").is_file()
        assert (pki / "own" / "cert.der").is_file()
        own_before = (pki / "own" / "cert.der").read_bytes()

        rc, text = await _cli("certs", "show", "--pki-dir", str(pki))
        assert rc == 0 and thumb in text
        rc, text = await _cli("certs", "trust", thumb[:12], "--pki-dir", str(pki))
        assert rc == 0, text

        out = Collector()
        source = OpcUaSource(_secure_settings(server, pki), out, batch_ms=20)
        task = await run_source(source)
        try:
            await wait_for(lambda: len(out.samples()) >= 3, 15, "values over SignAndEncrypt")
        finally:
            await source.stop()
            await task
        assert (pki / "own" / "cert.der").read_bytes() == own_before  # generated once, reused

        rc, text = await _cli("certs", "reject", thumb, "--pki-dir", str(pki))
        assert rc == 0, text
        with pytest.raises(CertificateRefused):
            await OpcUaSource(_secure_settings(server, pki), Collector()).connect()


async def test_trust_on_first_use_stores_the_certificate(tmp_path: Path) -> None:
    pki = tmp_path / "client-pki"
    async with await _secured_server(tmp_path) as server:
        tofu = _secure_settings(server, pki, trust_on_first_use=True)
        client = await OpcUaSource(tofu, Collector()).connect()
        await client.disconnect()
        trusted = Pki(pki).trusted()
        assert len(trusted) == 1 and trusted[0].application_uri == "urn:factory-edge:sim:server"
        # a None-security client is refused by this server: its only endpoint is encrypted
        with pytest.raises(Exception):  # noqa: B017
            await OpcUaSource(settings(server.endpoint, ["line1.press1.vibration"]), Collector()).connect()


async def test_browse_prints_the_tree_and_emits_tags(plant_server: PlantServer, tmp_path: Path) -> None:
    skeleton = tmp_path / "tags.toml"
    rc, text = await _cli("opcua", "browse", plant_server.endpoint, "--depth", "7",
                          "--emit-tags", str(skeleton))
    assert rc == 0, text
    assert f"press1  (Object) nsu={SIM_NAMESPACE};s=acme/plant1/area1/line1/press1" in text
    assert f"vibration  (Variable) nsu={SIM_NAMESPACE};s=line1.press1.vibration  [Double, r, mm/s]" in text
    import tomllib

    doc = tomllib.loads(skeleton.read_text())
    nodes = doc["sources"]["opcua"][0]["nodes"]
    assert {n["tag"] for n in nodes} == set(plant_server.plant.tag_names)
    assert doc["assets"]["tags"]["line1.press2.current"] == {"asset": "area1/line1/press2",
                                                             "measure": "current", "unit": "A"}
    # the skeleton is a valid source config
    OpcUaSourceSettings.model_validate(doc["sources"]["opcua"][0])


async def test_absolute_deadband_and_subscriptions_spread(plant_server: PlantServer) -> None:
    tags = plant_server.plant.tag_names
    nodes: list[dict[str, Any]] = [{"tag": t, "node": f"nsu={SIM_NAMESPACE};s={t}"} for t in tags]
    nodes[0] = {**nodes[0], "deadband": "absolute", "deadband_value": 1e6}  # nothing moves that far
    cfg = OpcUaSourceSettings.model_validate({"name": "sim", "endpoint": plant_server.endpoint,
                                              "nodes": nodes, "max_nodes_per_subscription": 3})
    out = Collector()
    source = OpcUaSource(cfg, out, batch_ms=20)
    task = await run_source(source)
    try:
        await wait_for(lambda: sum(r["tag"] == tags[1] for r in out.samples()) >= 20, 15, "20 values")
    finally:
        await source.stop()
        await task
    counts = {t: sum(r["tag"] == t for r in out.samples()) for t in tags}
    assert counts[tags[0]] <= 1  # the initial value only
    assert all(counts[t] >= 10 for t in tags[1:])  # 8 tags over 3 subscriptions all flow


async def test_simulated_server_restart_fault_is_ridden_through(tmp_path: Path) -> None:
    from edge.simulator.faults import parse_faults
    from edge.simulator.plant import machine_names

    labels = tmp_path / "labels.jsonl"
    faults = parse_faults("server_restart@2+2", machine_names(1, 1))
    plant = Plant(PlantConfig(lines=1, machines=1, seed=9, faults=tuple(faults)), labels_path=labels)
    out = Collector()
    async with PlantServer(plant, port=free_port()) as server:
        source = OpcUaSource(settings(server.endpoint, plant.tag_names), out, batch_ms=20)
        task = await run_source(source)
        try:
            await wait_for(lambda: len(out.events()) == 1, 20, "the gap event after the restart")
            await wait_for(lambda: source.connects == 2, 5, "second session")
        finally:
            await source.stop()
            await task
        assert server.restarts == 1
        assert source.resolved[plant.tag_names[0]].startswith("ns=3;")  # the restart moved the namespace
    rec = json.loads(labels.read_text().splitlines()[0])
    detail = json.loads(out.events()[0]["detail"])
    assert rec["kind"] == "server_restart"
    # the recorded gap covers the labelled outage
    assert detail["start_us"] <= rec["start_us"] + 200_000 and detail["end_us"] >= rec["end_us"]
