"""The OPC-UA source after outages and refusals, against real asyncua servers: values within 10 s of a
server's return after any outage (a TCP probe every 2 s while backing off), the gap as an event; our client
certificate refused by the server named (subject, thumbprint, file) with what to do, evented once, no
restart storm; a wrong endpoint path named in a warning."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from asyncua.client.client import Client
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError

from edge.core.ports import free_port
from edge.simulator.opcua_server import SIM_NAMESPACE, PlantServer
from edge.simulator.plant import Plant, PlantConfig
from ingest.settings import OpcUaSourceSettings
from ingest.sources.opcua import security
from ingest.sources.opcua.certs import ClientCertificateRejected, Pki
from ingest.sources.opcua.source import OpcUaSource
from tests.ingest.sources.opcua.test_source import Collector, _spawn_sim, _wait_serving, wait_for

TAGS = ["line1.press1.vibration", "line1.press2.temperature"]


def default_settings(endpoint: str, **kw: Any) -> OpcUaSourceSettings:
    """The shipped back-off (reconnect_min_s 0.5 doubling to reconnect_max_s 30), not a test's shorter one."""
    nodes = [{"tag": t, "node": f"nsu={SIM_NAMESPACE};s={t}"} for t in TAGS]
    return OpcUaSourceSettings.model_validate({"name": "sim", "endpoint": endpoint, "nodes": nodes, **kw})


async def _outage(tmp_path: Path, down_s: float) -> float:
    port = free_port()
    log = tmp_path / "sim.log"
    proc = await _spawn_sim(port, 0, log)
    out = Collector()
    source = OpcUaSource(default_settings(f"opc.tcp://127.0.0.1:{port}"), out, batch_ms=50)
    task: asyncio.Task[None] | None = None
    try:
        await _wait_serving(log, 1)
        task = asyncio.create_task(source.run())
        await wait_for(lambda: len(out.samples()) >= 10, 15, "values before the outage")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.sleep(down_s)
        n_before = len(out.samples())
        proc = await _spawn_sim(port, 0, log)
        await _wait_serving(log, 2)
        back = time.monotonic()
        await wait_for(lambda: len(out.samples()) > n_before, 10, "values within 10 s of the server's return")
        first_value_s = time.monotonic() - back
        await wait_for(lambda: len(out.events()) >= 1, 5, "the gap event")
    finally:
        await source.stop()
        if task is not None:
            await task
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    gap = [e for e in out.events() if e["kind"] == "connection" and "no data" in e["message"]]
    assert len(gap) == 1
    detail = json.loads(gap[0]["detail"])
    assert detail["duration_s"] >= down_s
    print(f"\nserver down {down_s:.0f} s: first value {first_value_s:.1f} s after it served again; gap event "
          f"{detail['duration_s']} s")
    return first_value_s


@pytest.mark.wallclock
async def test_values_within_10s_of_the_servers_return_after_7s_down(tmp_path: Path) -> None:
    assert await _outage(tmp_path, 7) < 10


@pytest.mark.slow
@pytest.mark.wallclock
async def test_values_within_10s_of_the_servers_return_after_60s_down(tmp_path: Path) -> None:
    assert await _outage(tmp_path, 60) < 10


# -- our client certificate refused by the server ---------------------------------------------------------


class CountingSource(OpcUaSource):
    attempts = 0

    async def connect(self) -> Any:
        self.attempts += 1
        return await super().connect()


async def test_client_certificate_rejected_by_the_server_is_named_evented_once_and_backed_off(
        tmp_path: Path) -> None:
    plant = Plant(PlantConfig(lines=1, machines=2, seed=3))
    pki = tmp_path / "client-pki"
    trusted = {"yes": False}

    async def validator(cert: Any, app: Any) -> None:
        if not trusted["yes"]:
            raise UaStatusCodeError(StatusCodes.BadCertificateUntrusted)  # type: ignore[no-untyped-call]

    async with PlantServer(plant, port=free_port(), security=["Basic256Sha256_SignAndEncrypt"],
                           cert_dir=tmp_path / "server-pki") as server:
        assert server.server is not None
        server.server.set_certificate_validator(validator)
        s = default_settings(server.endpoint, security_mode="SignAndEncrypt",
                             security_policy="Basic256Sha256", pki_dir=str(pki), trust_on_first_use=True,
                             reconnect_max_s=4.0)
        out = Collector()
        source = CountingSource(s, out, batch_ms=50)
        task = asyncio.create_task(source.run())
        try:
            await wait_for(lambda: any("certificate refused" in e["message"] for e in out.events()), 15,
                           "the refusal as an event")
            await asyncio.sleep(9)  # retried every reconnect_max_s, not in a storm
            attempts = source.attempts
            assert not task.done()  # the source keeps running: no supervisor restarts
            own = Pki(pki).own()
            assert own is not None
            ev = [e for e in out.events() if "certificate refused" in e["message"]]
            assert len(ev) == 1  # said once
            msg = ev[0]["message"]
            detail = json.loads(ev[0]["detail"])
            assert own.thumbprint in msg and own.subject in msg and str(pki / "own" / "cert.der") in msg
            assert "trusted" in msg and "BadCertificateUntrusted" in msg
            assert detail["thumbprint"] == own.thumbprint and detail["path"] == str(pki / "own" / "cert.der")
            assert source.last_error and own.thumbprint in source.last_error
            # the operator trusts it on the server: the next attempt connects, values flow
            trusted["yes"] = True
            await wait_for(lambda: len(out.samples()) >= 3, 15, "values once trusted")
        finally:
            await source.stop()
            await task
    print(f"\nclient certificate refused: {attempts} attempts in about 10 s (reconnect_max_s 4); one event")
    assert attempts <= 4


async def test_a_server_that_closes_the_channel_on_our_certificate_is_named_fake_channel_drop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers that only drop the channel surface in asyncua as a bare AssertionError. asyncua's own server
    refuses with a status code instead, so this one case fakes the drop: ``Client.connect`` raises what
    asyncua raises then (a fake, named so); the certificate, the PKI folder and the message are real."""
    plant = Plant(PlantConfig(lines=1, machines=1, seed=3))
    pki = tmp_path / "client-pki"
    async with PlantServer(plant, port=free_port(), security=["Basic256Sha256_SignAndEncrypt"],
                           cert_dir=tmp_path / "server-pki") as server:
        async def closed(self: Any) -> None:
            raise AssertionError

        monkeypatch.setattr(Client, "connect", closed)
        s = default_settings(server.endpoint, security_mode="SignAndEncrypt",
                             security_policy="Basic256Sha256", pki_dir=str(pki), trust_on_first_use=True)
        with pytest.raises(ClientCertificateRejected) as refused:
            await security.open_client(s, "sim")
    own = Pki(pki).own()
    assert own is not None and own.thumbprint in str(refused.value)
    assert "closed the secure channel" in str(refused.value)


async def test_a_wrong_endpoint_path_is_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    plant = Plant(PlantConfig(lines=1, machines=2, seed=2))
    async with PlantServer(plant, port=free_port()) as server:
        wrong = server.endpoint.rstrip("/") + "/no/such/path"
        out = Collector()
        source = OpcUaSource(default_settings(wrong), out, batch_ms=50)
        task = asyncio.create_task(source.run())
        try:
            await wait_for(lambda: len(out.samples()) >= 3, 15, "values (this server ignores the path)")
            await wait_for(lambda: any("endpoint path" in e["message"] for e in out.events()), 5, "the event")
        finally:
            await source.stop()
            await task
        right_out = Collector()
        right = OpcUaSource(default_settings(server.endpoint), right_out, batch_ms=50)
        rtask = asyncio.create_task(right.run())
        try:
            await wait_for(lambda: len(right_out.samples()) >= 3, 15, "values from the right endpoint")
        finally:
            await right.stop()
            await rtask
    warned = [r.getMessage() for r in caplog.records if "endpoint path" in r.getMessage()
              or "/no/such/path" in r.getMessage()]
    assert any("/no/such/path" in w and server.endpoint.rstrip("/") in w for w in warned), warned
    print(f"\n{warned[0]}")
    assert not any("endpoint path" in e["message"] for e in right_out.events())
