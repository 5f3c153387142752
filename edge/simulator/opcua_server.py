"""The plant served by an asyncua OPC-UA server at the plant's rate.

Tags live under the namespace URI :data:`SIM_NAMESPACE` with string node ids equal to the tag names
(``nsu=urn:factory-edge:sim;s=line1.press1.vibration``), in folders by ISA-95 path
(Objects/acme/plant1/area1/line1/press1/vibration). ``server_restart`` faults stop the server for their
window and start a fresh one on the same port (optionally with the namespace at another index).

In process::

    async with PlantServer(Plant(PlantConfig(seed=1)), port=4841) as server:
        ...  # server.endpoint serves, values tick at 10 Hz

or ``await serve_plant(PlantConfig(), port=4840, duration_s=60)`` (what ``edge simulate`` runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds

from edge.simulator.plant import Plant, PlantConfig

log = logging.getLogger("edge.simulator")

SIM_NAMESPACE = "urn:factory-edge:sim"
SERVER_APP_URI = "urn:factory-edge:sim:server"

_POLICIES: dict[str, Any] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "Aes128_Sha256_RsaOaep_Sign": ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    "Aes128_Sha256_RsaOaep_SignAndEncrypt": ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    "Aes256_Sha256_RsaPss_Sign": ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    "Aes256_Sha256_RsaPss_SignAndEncrypt": ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
}
SECURITY_CHOICES = tuple(_POLICIES)


def _nid(ident: Any, ns: Any) -> ua.NodeId:
    return ua.NodeId(ident, ns)


class _Users:
    """Username/password check for the simulator (anonymous allowed only when no users are set)."""

    def __init__(self, users: Mapping[str, str] | None) -> None:
        self.users = dict(users or {})

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if not self.users:
            return User(role=UserRole.User)
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        return None


class PlantServer:
    """An asyncua server that publishes ``plant`` at its rate until stopped."""

    def __init__(
        self,
        plant: Plant,
        *,
        host: str = "127.0.0.1",
        port: int = 4840,
        namespace_uri: str = SIM_NAMESPACE,
        namespace_shift: int = 0,
        restart_namespace_shift: int = 1,
        security: Sequence[str] = ("None",),
        cert_dir: Path | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        unknown = [s for s in security if s not in _POLICIES]
        if unknown:
            raise ValueError(f"unknown security {unknown} (choose from {', '.join(SECURITY_CHOICES)})")
        if any(s != "None" for s in security) and cert_dir is None:
            raise ValueError("a secured simulator needs cert_dir for its certificate")
        self.plant = plant
        self.host = host
        self.port = port
        self.namespace_uri = namespace_uri
        self.namespace_shift = namespace_shift
        self.restart_namespace_shift = restart_namespace_shift
        self.security = tuple(security)
        self.cert_dir = cert_dir
        self.users = users
        self.server: Server | None = None
        self.ns_index = 0
        self.restarts = 0
        self.values_written = 0
        self.ticks = 0
        self._nodeids: list[ua.NodeId] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}"

    @property
    def cert_path(self) -> Path | None:
        return self.cert_dir / "server_cert.der" if self.cert_dir else None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start_server(self) -> None:
        """Build the address space and listen (no ticking: see :meth:`run`)."""
        server = Server(user_manager=_Users(self.users))  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("Factory Edge plant simulator")
        await server.set_application_uri(SERVER_APP_URI)
        server.set_security_policy([_POLICIES[s] for s in self.security])
        if self.cert_dir is not None:
            from asyncua.crypto.cert_gen import setup_self_signed_certificate
            from cryptography.x509.oid import ExtendedKeyUsageOID

            self.cert_dir.mkdir(parents=True, exist_ok=True)
            key, cert = self.cert_dir / "server_key.pem", self.cert_dir / "server_cert.der"
            await setup_self_signed_certificate(
                key, cert, SERVER_APP_URI, socket.gethostname(),
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                {"commonName": "factory-edge-sim", "organizationName": "Factory Edge"},
            )
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
        for i in range(self.namespace_shift):
            await server.register_namespace(f"urn:factory-edge:sim:padding:{i}")
        idx = await server.register_namespace(self.namespace_uri)
        self.ns_index = idx
        folders: dict[str, Any] = {}
        objects = server.nodes.objects
        self._nodeids = []
        for tag in self.plant.tags:
            parent = objects
            path = ""
            for part in tag.asset.split("/"):
                path = f"{path}/{part}" if path else part
                if path not in folders:
                    folders[path] = await parent.add_folder(_nid(path, idx), ua.QualifiedName(part, idx))
                parent = folders[path]
            var = await parent.add_variable(_nid(tag.name, idx), ua.QualifiedName(tag.measure, idx),
                                            0.0, varianttype=ua.VariantType.Double)
            await var.add_property(_nid(f"{tag.name}.EngineeringUnits", idx),
                                   ua.QualifiedName("EngineeringUnits", 0), tag.unit)
            self._nodeids.append(var.nodeid)
        await server.start()
        self.server = server
        log.info("plant simulator serving", extra={"endpoint": self.endpoint, "tags": len(self._nodeids),
                                                   "namespace": self.namespace_uri, "ns_index": idx})

    async def stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await server.stop()

    async def __aenter__(self) -> PlantServer:
        await self.start_server()
        self._stop.clear()
        self._task = asyncio.create_task(self._tick_loop(None), name="plant-server")
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.stop_server()
        self.plant.close()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, duration_s: float | None = None) -> None:
        """Serve and tick until :meth:`request_stop` or ``duration_s``; then stop the server."""
        if self.server is None:
            await self.start_server()
        self._stop.clear()
        try:
            await self._tick_loop(duration_s)
        finally:
            await self.stop_server()
            self.plant.close()

    # -- ticking ---------------------------------------------------------------------------------
    async def _tick_loop(self, duration_s: float | None) -> None:
        plant = self.plant
        if plant.t_s == 0.0:  # the plant's clock starts with the ticking, not at construction
            plant.start_us = time.time_ns() // 1000
        t0 = time.monotonic()
        restarts = sorted((f for f in plant.faults if f.kind == "server_restart"), key=lambda f: f.start_s)
        while not self._stop.is_set():
            elapsed = time.monotonic() - t0
            if duration_s is not None and elapsed >= duration_s:
                return
            # step every due tick (the plant's clock never slips), write only the newest
            tick = None
            while plant.t_s <= elapsed:
                tick = plant.step()
            if tick is not None:
                down = any(f.active(tick.t_s) for f in restarts)
                if down and self.server is not None:
                    log.warning("simulated server restart: stopping", extra={"endpoint": self.endpoint})
                    await self.stop_server()
                elif not down and self.server is None:
                    self.restarts += 1
                    self.namespace_shift += self.restart_namespace_shift
                    await self.start_server()
                if self.server is not None:
                    await self._write(tick.ts_us, tick.values, tick.valid)
                    self.ticks += 1
            wait = t0 + plant.t_s - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), wait)
            else:
                await asyncio.sleep(0)

    async def _write(self, ts_us: int, values: Any, valid: Any) -> None:
        assert self.server is not None
        src: Any = datetime.fromtimestamp(ts_us / 1e6, UTC)
        now: Any = datetime.now(UTC)
        write = self.server.iserver.aspace.write_attribute_value
        attr = AttributeIds.Value
        n = 0
        for nodeid, value, ok in zip(self._nodeids, values.tolist(), valid.tolist(), strict=True):
            if not ok:
                continue
            dv = ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=src,
                              ServerTimestamp=now)
            await write(nodeid, attr, dv)
            n += 1
        self.values_written += n


async def serve_plant(
    config: PlantConfig | Plant | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 4840,
    labels_path: Path | None = None,
    duration_s: float | None = None,
    stop_event: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    **server_kw: Any,
) -> PlantServer:
    """Serve a plant until ``duration_s`` passes or ``stop_event`` is set; returns the stopped server
    (``values_written``, ``restarts``, ``ns_index`` for reports). ``ready`` is set once it listens."""
    plant = config if isinstance(config, Plant) else Plant(config or PlantConfig(), labels_path=labels_path)
    server = PlantServer(plant, host=host, port=port, **server_kw)
    await server.start_server()
    if ready is not None:
        ready.set()
    watcher: asyncio.Task[None] | None = None
    if stop_event is not None:
        async def watch() -> None:
            await stop_event.wait()
            server.request_stop()
        watcher = asyncio.create_task(watch())
    try:
        await server.run(duration_s)
    finally:
        if watcher is not None:
            watcher.cancel()
    return server
