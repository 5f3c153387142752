"""Nothing lost in the deployment as shipped: a private Mosquitto runs the SHIPPED broker config
(``firmware-config/mosquitto/factory-edge.conf``, only its port and persistence folder rewritten), the
appliance (``tests.fixtures.delivery_app``: MQTT source, QoS 1, persistent session, into the historian
sink on a PostgreSQL of its own) is SIGKILLed mid-stream and started again after the shipped unit's
``RestartSec`` (no systemd here: its timing is emulated), or the broker is restarted; sent and stored are
compared by (tag, ts): 0 lost, 0 duplicated."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.app.commands.config_cmd import mosquitto_limits
from tests.fixtures.delivery_helpers import (
    NumberedPublisher,
    PrivatePostgres,
    async_wait_until,
    compare_mqtt_rows,
    count_samples,
    wait_for_count,
)
from tests.fixtures.delivery_helpers import private_pg as private_pg  # fixture
from tests.fixtures.services import MosquittoProcess

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = ROOT / "firmware-config" / "mosquitto" / "factory-edge.conf"
SHIPPED_UNIT = ROOT / "firmware-config" / "systemd" / "factory-edge@.service"
COUNT, N, RATE = 45_000, 10, 3000.0  # QoS 1 messages, samples per message, messages/s


def unit_restart_sec(unit: Path = SHIPPED_UNIT) -> float:
    """``RestartSec`` of the shipped unit (seconds; a plain number or ``Ns``/``Nms``)."""
    m = re.search(r"^RestartSec=(\S+)$", unit.read_text(), re.M)
    assert m, f"no RestartSec in {unit}"
    v = m.group(1)
    return float(v[:-2]) / 1000 if v.endswith("ms") else float(v.rstrip("s"))


class ShippedMosquitto(MosquittoProcess):
    """``mosquitto -c`` the shipped config, with the listener port and persistence_location rewritten."""

    def __init__(self) -> None:
        if not Path(shutil.which("mosquitto") or "/usr/sbin/mosquitto").exists():
            pytest.skip("mosquitto is not installed")
        super().__init__()

    def config_text(self) -> str:
        text, n_listen = re.subn(r"^listener 1883 127\.0\.0\.1$", f"listener {self.port} 127.0.0.1",
                                 SHIPPED_CONF.read_text(), flags=re.M)
        text, n_pers = re.subn(r"^persistence_location \S+$", f"persistence_location {self.dir}/", text,
                               flags=re.M)
        assert (n_listen, n_pers) == (1, 1), "the shipped conf changed: rewrite its port and paths here"
        return text


@pytest.fixture
def shipped_mosquitto() -> Iterator[ShippedMosquitto]:
    broker = ShippedMosquitto()
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()


class App:
    def __init__(self, dsn: str, url: str, topic: str, spool: Path) -> None:
        self.args = [sys.executable, "-m", "tests.fixtures.delivery_app", dsn, url, topic, str(spool),
                     f"app-{uuid.uuid4().hex[:6]}"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == b"ready", line

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_shipped_broker_conf_is_sized_for_the_spool_horizon() -> None:
    lim = mosquitto_limits(SHIPPED_CONF)
    assert lim["max_queued_messages"] >= 1_000_000 and lim["max_queued_bytes"] >= 1 << 30
    assert lim["persistent_client_expiration"] >= 3600  # >= the appliance's session expiry
    assert unit_restart_sec() < 3600


async def _stream(pg: PrivatePostgres, broker: ShippedMosquitto, tmp_path: Path, fault: str) -> None:
    prefix = f"fe-test/{uuid.uuid4().hex[:8]}"
    app = App(pg.dsn, broker.url, f"{prefix}/#", tmp_path / "spool")
    await asyncio.to_thread(app.start)
    restart_sec = unit_restart_sec()
    pub = NumberedPublisher(broker.port, prefix, N, RATE, f"pub-{uuid.uuid4().hex[:6]}").start(COUNT)
    down_s = 0.0
    try:
        await async_wait_until(lambda: pub.sent >= COUNT * 0.3, 60, "the stream to advance")
        t0 = asyncio.get_running_loop().time()
        if fault == "appliance":
            app.kill()
            await asyncio.sleep(restart_sec)  # systemd: Restart=on-failure after RestartSec
            await asyncio.to_thread(app.start)
        else:
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(restart_sec)
            await asyncio.to_thread(broker.start)
        down_s = asyncio.get_running_loop().time() - t0
        queued_at_return = pub.sent - int(COUNT * 0.3)
        await asyncio.to_thread(pub.wait_done, 120)
        await asyncio.to_thread(wait_for_count, lambda: count_samples(pg.dsn), COUNT * N,
                                "every sample in the historian")
        await asyncio.sleep(1.0)
    finally:
        app.terminate()
        pub.close()
    dups = compare_mqtt_rows(pg.dsn, list(range(COUNT)), N, prefix)  # asserts 0 lost, row by row
    print(f"\n{fault} fault: {COUNT} QoS 1 messages ({COUNT * N} samples) sent and acknowledged; down "
          f"{down_s:.1f} s (RestartSec {restart_sec:g}); about {queued_at_return} published meanwhile; "
          f"stored {count_samples(pg.dsn)} rows; 0 lost; {dups} duplicated")
    assert dups == 0


@pytest.mark.slow
@pytest.mark.wallclock
async def test_shipped_appliance_sigkilled_and_restarted_after_restartsec_loses_nothing(
        private_pg: PrivatePostgres, shipped_mosquitto: ShippedMosquitto, tmp_path: Path) -> None:
    await _stream(private_pg, shipped_mosquitto, tmp_path, "appliance")


@pytest.mark.slow
@pytest.mark.wallclock
async def test_shipped_broker_restarted_mid_stream_loses_nothing(
        private_pg: PrivatePostgres, shipped_mosquitto: ShippedMosquitto, tmp_path: Path) -> None:
    await _stream(private_pg, shipped_mosquitto, tmp_path, "broker")
