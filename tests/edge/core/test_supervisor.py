"""The supervisor: restart with backoff and an event, ordered stop with drained queues, clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.core.supervisor import Supervisor


class Flaky:
    """Fails its first ``failures`` runs, then runs until stopped."""

    role = "stage"

    def __init__(self, failures: int) -> None:
        self.name = "flaky"
        self.failures = failures
        self.runs = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError(f"boom {self.runs}")
        await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()


class Recorder:
    def __init__(self, name: str, role: str, log: list[str], queue: asyncio.Queue[int] | None = None,
                 out: list[int] | None = None) -> None:
        self.name = name
        self.role = role
        self.log = log
        self.queue = queue
        self.out = out
        self._stop = asyncio.Event()

    async def run(self) -> None:
        if self.role == "source":
            assert self.queue is not None
            i = 0
            while not self._stop.is_set():
                await self.queue.put(i)
                i += 1
                await asyncio.sleep(0.001)
        elif self.role == "stage":
            assert self.queue is not None and self.out is not None
            while not (self._stop.is_set() and self.queue.empty()):
                try:
                    item = await asyncio.wait_for(self.queue.get(), 0.05)
                except TimeoutError:
                    continue
                await asyncio.sleep(0.002)  # slower than the source: the queue holds a backlog at stop
                self.out.append(item)
        else:
            await self._stop.wait()
        self.log.append(f"{self.name} returned")

    async def stop(self) -> None:
        self.log.append(f"{self.name} stop")
        self._stop.set()


async def test_failed_component_restarts_with_backoff_and_records_an_event() -> None:
    events: list[tuple[str, str, dict[str, object]]] = []
    sup = Supervisor(backoff_min_s=0.05, backoff_max_s=0.2,
                     on_event=lambda k, m, d: events.append((k, m, d)))
    flaky = Flaky(failures=3)
    sup.add(flaky)
    t0 = time.monotonic()
    runner = asyncio.create_task(sup.run())
    while flaky.runs < 4 and time.monotonic() - t0 < 5:
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - t0
    sup.request_stop()
    await runner
    assert flaky.runs == 4
    assert sup.states["flaky"].restarts == 3
    assert [e[2]["restarts"] for e in events] == [1, 2, 3]
    assert "boom 3" in str(events[-1][2]["error"])
    assert elapsed >= 0.05 + 0.1 + 0.2 - 0.02  # backoff doubled up to its cap


async def test_stop_order_sources_first_and_the_stage_drains_its_queue() -> None:
    log: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=50)
    out: list[int] = []
    sup = Supervisor()
    sup.add(Recorder("sink", "sink", log))
    sup.add(Recorder("stage", "stage", log, queue, out))
    sup.add(Recorder("source", "source", log, queue))
    await sup.run(duration_s=0.5)
    assert log.index("source returned") < log.index("stage stop")
    assert log.index("stage returned") < log.index("sink stop")
    assert queue.empty()
    assert out == list(range(len(out)))  # everything the source put was processed, in order


def test_duplicate_names_are_refused() -> None:
    sup = Supervisor()
    sup.add(Flaky(0))
    with pytest.raises(ValueError, match="flaky"):
        sup.add(Flaky(0))


def test_sigterm_stops_edge_run_cleanly_within_10s(tmp_path: Path, pg_dsn: str, mqtt_server_url: str) -> None:
    """``edge run`` on a config with no sources: SIGTERM makes it stop every component and exit 0."""
    import psycopg

    from edge.sinks.historian.admin import init_historian

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn)
    cfg = tmp_path / "cfg"
    (cfg / "boxes").mkdir(parents=True)
    (cfg / "base.toml").write_text(
        f'[historian]\ndsn = "{pg_dsn}"\n[broker]\nurl = "{mqtt_server_url}"\n'
        f'[spool]\ndir = "{tmp_path / "spool"}"\n[metrics]\nenabled = false\n'
        f'[inference]\nenabled = false\nmodels_dir = "{tmp_path / "models"}"\n'
    )
    cmd = [sys.executable, "-m", "edge.app.cli", "--log-format", "json", "run", "--dir", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        rc = proc.wait(timeout=15)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, proc.stderr.read() if proc.stderr else ""
    assert took < 10
