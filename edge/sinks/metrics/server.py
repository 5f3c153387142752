"""The metrics endpoint: ``GET /metrics`` (Prometheus text) and ``GET /stats`` (the snapshot), and the state
file ``edge stats`` reads when no endpoint answers. The counters themselves are :mod:`edge.core.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from edge.core.component import Role
from edge.core.metrics import METRICS, Metrics, write_state_file

log = logging.getLogger("edge.sinks.metrics")


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


class MetricsServer:
    """Supervisor component: the HTTP metrics endpoint and the periodic state file."""

    role: Role = "sink"

    def __init__(self, metrics: Metrics | None = None, *, listen: str = "127.0.0.1:9464",
                 state_file: Path | None = None, state_interval_s: float = 5.0,
                 name: str = "metrics") -> None:
        self.name = name
        self.metrics = metrics or METRICS
        self.host, self.port = parse_listen(listen)
        self.state_file = state_file
        self.state_interval_s = state_interval_s
        self._stop = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.bound_port: int | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        self._stop = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0] if self._server.sockets else None
        self.bound_port = int(sock.getsockname()[1]) if sock is not None else self.port
        self.ready.set()
        try:
            while not self._stop.is_set():
                self._write_state()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.state_interval_s)
        finally:
            self._write_state()
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def stop(self) -> None:
        self._stop.set()

    def _write_state(self) -> None:
        if self.state_file is None:
            return
        try:
            write_state_file(self.metrics, self.state_file)
        except OSError as exc:
            log.warning("cannot write the metrics state file", extra={"path": str(self.state_file),
                                                                      "error": str(exc)})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while True:  # skip headers
                line = await asyncio.wait_for(reader.readline(), 5)
                if line in (b"\r\n", b"\n", b""):
                    break
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else "/"
            if parts and parts[0] not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path.split("?")[0] in ("/metrics", "/"):
                status, ctype = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
                body = self.metrics.render_prometheus().encode()
            elif path.split("?")[0] in ("/stats", "/stats.json"):
                status, ctype = "200 OK", "application/json"
                body = json.dumps(self.metrics.snapshot(), sort_keys=True).encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"try /metrics or /stats\n"
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            writer.write(head + (body if parts and parts[0] != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
