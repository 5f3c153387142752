"""Soak: the whole appliance at a steady offered load for N minutes, its memory sampled every 10 s.

Setup as ``bench_e2e.py`` (a fresh database ``fe_bench_soak_<random>`` on the local PostgreSQL, dropped at the
end; a private Mosquitto on a free port running the shipped ``firmware-config/mosquitto/factory-edge.conf``
(``--broker system`` uses the one at 127.0.0.1:1883 instead, whose default queue of 1000 messages drops QoS 1
messages whenever the appliance falls behind); the demo box's config with an MQTT JSON source of batched
payloads, the demo plant's tags plus synthetic presses, a PCA baseline trained as the demo trains it). This
process runs the whole pipeline (``build_pipeline``: MQTT source, quality gate and context, historian writer,
inference, outbox publisher); a publisher process sends ``--rate`` samples/s for ``--minutes``.

Every ``--sample-s`` (10 s) the RSS of this process and of its decode workers is read from ``/proc``, with
the samples ingested so far and the queue depths. After ``--warmup-min`` (default: 2 min, at most a fifth of
the run) the report gives the RSS at the end of warm-up and at the end, the growth in per cent, and the
least-squares slope over the samples after warm-up (MB/min, and per cent of the warm-up RSS per hour), and
the Python objects alive then (``sys.getallocatedblocks``: RSS that grows while they stay flat is buffers or
the allocator keeping pages, not objects piling up); the deepest the queues got says whether the box kept
up (a full queue holds its batches in memory).
The run uses the shipped unit's allocator settings (its ``Environment=MALLOC_*`` lines; the script starts
itself again with them, since glibc reads them only at process start); ``--no-unit-env`` measures without.
Target: no growth beyond 5 % after warm-up (``PASS``/``FAIL`` printed; exit 0 either way). Also: samples
sent, ingested and stored, how many were lost (sent less stored), the sustained rate, and dead letters.

    .venv/bin/python bench/bench_soak.py                       # 30 min at 50,000 samples/s
    flock /tmp/fe-cpu.lock .venv/bin/python bench/bench_soak.py --minutes 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import bench_e2e  # noqa: E402  (beside this script)

PG_ADMIN = bench_e2e.PG_ADMIN
SHIPPED_BROKER_CONF = ROOT / "firmware-config" / "mosquitto" / "factory-edge.conf"


class ShippedBroker:
    """``mosquitto -c`` the shipped config, with its listener port and persistence folder rewritten."""

    def __init__(self, port: int, folder: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        text, n_listen = re.subn(r"^listener 1883 127\.0\.0\.1$", f"listener {port} 127.0.0.1",
                                 SHIPPED_BROKER_CONF.read_text(), flags=re.M)
        text, n_pers = re.subn(r"^persistence_location \S+$", f"persistence_location {folder}/", text,
                               flags=re.M)
        if (n_listen, n_pers) != (1, 1):
            raise RuntimeError(f"{SHIPPED_BROKER_CONF} changed: rewrite its listener and persistence here")
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # mosquitto drops to its own user, which must write its persistence file
            with contextlib.suppress(LookupError, OSError):
                shutil.chown(folder, "mosquitto")
        conf = folder / "mosquitto.conf"
        conf.write_text(text)
        self.port = port
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return
            time.sleep(0.05)
        raise RuntimeError(f"the shipped mosquitto did not listen on port {port} within 10 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def publish_to(port: int, *args: Any) -> None:
    """``bench_e2e.publisher`` against the broker on ``port`` (run in a spawned process)."""
    bench_e2e.MQTT_PORT = port
    bench_e2e.publisher(*args)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def slope_per_min(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 2:
        return float("nan")
    a, _ = np.polyfit(np.asarray(ts) / 60.0, np.asarray(ys), 1)
    return float(a)


async def soak(args: argparse.Namespace, base: Any, services: Any, names: list[str],
               vals: np.ndarray) -> dict[str, Any]:
    from edge.app.pipeline import build_pipeline

    prefix = f"fe-bench-soak-{secrets.token_hex(3)}"
    source_name = "soak"
    cfg = bench_e2e.bench_config(base, args.equipment, prefix, source_name, args.per_msg)
    ctx = mp.get_context("spawn")
    pub_q = ctx.Queue()
    pipeline = build_pipeline(cfg, historian_dsn=services.writer_dsn, broker_url=services.mqtt_url)
    source = pipeline.components[source_name]
    sup_task = asyncio.create_task(pipeline.supervisor.run())
    deadline = time.monotonic() + 30
    while not source.subscribed.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if not source.subscribed.is_set():
        raise RuntimeError("the pipeline's MQTT source did not subscribe within 30 s")
    await asyncio.sleep(2.0)
    duration = args.minutes * 60.0
    start_at = time.time() + 1.0
    pub = ctx.Process(target=publish_to, args=(args.mqtt_port, prefix, names, vals, float(args.rate),
                                               args.per_msg, duration, start_at, pub_q), daemon=True)
    pub.start()
    trace: list[dict[str, Any]] = []

    async def monitor() -> None:
        while True:
            workers = list(getattr(source, "worker_pids", []) or [])
            own, wrk = rss_mb(os.getpid()), sum(rss_mb(p) for p in workers)
            row = {"t": time.time() - start_at, "rss": own + wrk, "rss_main": own, "rss_workers": wrk,
                   "blocks": sys.getallocatedblocks() / 1e6,
                   "samples": int(source.counters["samples"]), "q_hist": pipeline.q_hist.qsize(),
                   "q_in": pipeline.q_in.qsize()}
            trace.append(row)
            if not args.quiet:
                print(f"  t={row['t']:7.0f} s  RSS {row['rss']:7.1f} MB (main {own:.1f}, workers {wrk:.1f}, "
                      f"{row['blocks']:.2f}M objects)  "
                      f"samples {row['samples']:>12,}  q_in {row['q_in']} q_hist {row['q_hist']}", flush=True)
            await asyncio.sleep(args.sample_s)

    await asyncio.sleep(max(0.0, start_at - time.time()))
    mon = asyncio.create_task(monitor())
    await asyncio.sleep(max(0.0, start_at + duration - time.time()))
    pub_res = await asyncio.to_thread(pub_q.get, True, 120)
    await asyncio.to_thread(pub.join, 10)
    # What the broker queued while the box was behind still comes: wait while it does (30 s without
    # progress, or 10 min, ends the wait), so that "lost" is what never arrived, not what was late.
    last, last_at, give_up = -1, time.time(), time.time() + 600
    while source.counters["samples"] < pub_res["sent"] and time.time() < give_up:
        if source.counters["samples"] != last:
            last, last_at = source.counters["samples"], time.time()
        elif time.time() - last_at > 30:
            break
        await asyncio.sleep(0.2)
    mon.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await mon
    await asyncio.sleep(2.0)
    pipeline.supervisor.request_stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(sup_task, 60)
    import psycopg

    with psycopg.connect(services.superuser_dsn) as conn:
        stored = conn.execute("SELECT count(*) FROM samples WHERE source = %s", (source_name,)).fetchone()
        dead: dict[str, int] = dict(conn.execute(
            "SELECT reason, count(*) FROM dead_letters WHERE source = %s GROUP BY 1",
            (source_name,)).fetchall())
    restarts = {n: s.restarts for n, s in pipeline.supervisor.states.items() if s.restarts}
    return {"trace": trace, "pub": pub_res, "stored": int(stored[0]) if stored else 0, "dead": dead,
            "ingested": int(source.counters["samples"]), "restarts": restarts, "duration": duration}


def summarize(args: argparse.Namespace, r: dict[str, Any]) -> tuple[str, bool]:
    trace = r["trace"]
    warm_s = args.warmup_min * 60.0 if args.warmup_min is not None else min(120.0, r["duration"] / 5)
    after = [x for x in trace if x["t"] >= warm_s]
    if len(after) < 2:
        return "too few samples after warm-up", False
    ts = [x["t"] for x in after]
    rss = [x["rss"] for x in after]
    rss_w, rss_end = rss[0], rss[-1]
    growth = (rss_end - rss_w) / rss_w * 100
    slope = slope_per_min(ts, rss)
    ok = growth <= 5.0
    pub = r["pub"]
    sustained = pub["sent"] / max(1e-9, pub["t1"] - pub["t0"])
    blocks_w, blocks_end = after[0]["blocks"], after[-1]["blocks"]
    q_max = max(max(x["q_in"], x["q_hist"]) for x in trace)
    lines = [
        f"soak: {r['duration'] / 60:.1f} min at {args.rate:,} samples/s offered ({args.per_msg} a message, "
        f"{args.equipment} presses; broker: {args.broker}); RSS every {args.sample_s:g} s, "
        f"{len(trace)} samples",
        f"sent {pub['sent']:,} ({sustained:,.0f}/s, late sends {pub['late_sends']}), ingested "
        f"{r['ingested']:,}, stored {r['stored']:,}, lost {pub['sent'] - r['stored']:,}; dead letters "
        f"{r['dead'] or 0}; restarts {r['restarts'] or 0}; deepest queue {q_max} batches",
        f"Python objects: {blocks_w:.2f}M after warm-up, {blocks_end:.2f}M at the end",
        f"RSS: start {trace[0]['rss']:.1f} MB, after {warm_s:.0f} s warm-up {rss_w:.1f} MB, "
        f"end {rss_end:.1f} MB (max {max(rss):.1f}); growth after warm-up {growth:+.2f} %; "
        f"slope {slope:+.3f} MB/min ({slope * 60 / rss_w * 100:+.2f} %/h of the warm-up RSS)",
        f"target: no growth beyond 5 % after warm-up: {'PASS' if ok else 'FAIL'}",
    ]
    return "\n".join(lines), ok


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    from edge.app.demo.run import DemoOptions, demo_config, start_services, train_baseline
    from edge.core.ports import free_port

    dbname = f"fe_bench_soak_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    tmp = Path(tempfile.mkdtemp(prefix="fe-bench-soak-"))
    quiet = (lambda m: None) if args.quiet else (lambda m: print(m, flush=True))
    services = None
    broker = None
    try:
        if args.broker == "shipped":
            broker = ShippedBroker(free_port(), tmp / "mosquitto")
            args.mqtt_port = broker.port
        else:
            args.mqtt_port = bench_e2e.MQTT_PORT
        opts = DemoOptions(historian_dsn=f"postgresql://postgres@127.0.0.1:5432/{dbname}",
                           mqtt_url=f"mqtt://{bench_e2e.MQTT_HOST}:{args.mqtt_port}", data_dir=tmp,
                           baseline_s=args.baseline_s, out=quiet)
        services = start_services(opts)
        base = demo_config(opts, services, free_port(), free_port())
        cfg0 = bench_e2e.bench_config(base, args.equipment, "x", "x", args.per_msg)
        train_baseline(cfg0, opts)
        names, vals = bench_e2e.value_pool(cfg0, 120.0, seed=11)
        return await soak(args, base, services, names, vals)
    finally:
        if services is not None:
            services.stop()
        if broker is not None:
            broker.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


SHIPPED_UNIT = ROOT / "firmware-config" / "systemd" / "factory-edge@.service"


def _unit_allocator_env() -> dict[str, str]:
    """The shipped unit's ``Environment=MALLOC_*`` settings: glibc reads them once, at process start."""
    env: dict[str, str] = {}
    for line in SHIPPED_UNIT.read_text().splitlines():
        m = re.match(r"^Environment=(MALLOC_[A-Z_]+)=(\S+)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2)
    return env


def _reexec_with_unit_env() -> None:
    """Run this script again under the unit's allocator settings when they are not in force yet."""
    wanted = _unit_allocator_env()
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        if wanted:
            print("allocator settings of the shipped unit: "
                  + " ".join(f"{k}={v}" for k, v in sorted(wanted.items())), flush=True)
        return
    env = {**os.environ, **wanted}
    raise SystemExit(subprocess.run([sys.executable, *sys.argv], env=env, check=False).returncode)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="minutes of load (default 30)")
    ap.add_argument("--rate", type=int, default=50_000, help="offered samples/s (default 50,000)")
    ap.add_argument("--sample-s", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--warmup-min", type=float, default=None,
                    help="minutes of warm-up left out of the growth (default 2, at most a fifth of the run)")
    ap.add_argument("--equipment", type=int, default=60, help="presses (4 tags each)")
    ap.add_argument("--per-msg", type=int, default=100, help="samples per MQTT message")
    ap.add_argument("--baseline-s", type=float, default=900.0, help="simulated seconds to train on")
    ap.add_argument("--broker", choices=["shipped", "system"], default="shipped",
                    help="a private Mosquitto with the shipped config (default), or 127.0.0.1:1883's")
    ap.add_argument("--no-unit-env", dest="unit_env", action="store_false",
                    help="do not apply the shipped unit's allocator settings (MALLOC_* Environment= lines)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.unit_env:
        _reexec_with_unit_env()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = asyncio.run(main_async(args))
    text, _ = summarize(args, result)
    print()
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
