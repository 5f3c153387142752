"""End to end: from a sample's timestamp to its insight on MQTT, at an offered load of samples/s.

Setup (all real services): a fresh database ``fe_bench_e2e_<random>`` on the local PostgreSQL (dropped at the
end), the historian schema as ``edge historian init`` makes it, Mosquitto at 127.0.0.1:1883, the demo box's
config with the OPC-UA source replaced by an MQTT JSON source (batched payloads: ``--per-msg`` samples a
message, ``{"s": [{"n": tag, "v": value, "t": epoch_us}, ...]}``, QoS 1), the demo plant's 24 tags plus
synthetic presses (same measures and ranges) up to ``--equipment`` presses, and a PCA baseline trained as the
demo trains it (``edge.app.demo.run.train_baseline``) into a registry.

Three processes, so their CPU is separate: this one runs the whole pipeline
(``edge.app.pipeline.build_pipeline``:
MQTT source, quality gate and context, historian writer, inference, outbox publisher); a publisher process
sends at the offered rate, every sample stamped with its message's send time (``time.time()``); a subscriber
process listens on ``<prefix>/+/+/+/+/+/+/_insights/#`` and records each insight's receive time.

Latency of an insight = its receive time (subscriber, ``time.time()``) - ``window.end`` of the insight (the
exclusive end of its event-time window: the newest sample that can be in the window is just before it).
A window can only close once the equipment's watermark (newest sample time - ``allowed_lateness_s``) passes
its end, so ``allowed_lateness_s`` is an inherent wait; "pipeline own" = latency - allowed_lateness_s is what
the pipeline adds, split into "close wait" (end + lateness to the start of the inference tick that scored the
window: the closing sample's way in plus the wait for the tick), "tick->commit" (features, scoring, historian
queue and commit; ``insights_outbox.created_at``) and "commit->MQTT" (the outbox publisher woken by the
commit's NOTIFY, publish, broker). The CPU line splits the CPU seconds of the load period by thread group of
this process, this database's PostgreSQL backends and the (shared) broker: what bounds the ceiling.
Counted: insights of windows that start after the publisher started and whose end + lateness is before it
stopped (full windows closed by data), first delivery only (retained copies ignored).

    .venv/bin/python bench/bench_e2e.py --rates 50000,25000,10000 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
MEASURES = (("vibration", "mm/s", 0.0, 50.0), ("temperature", "degC", -20.0, 150.0),
            ("current", "A", 0.0, 100.0), ("pressure", "bar", 0.0, 250.0))
# published unit -> (scale, offset) from the canonical unit (the demo site's line 2 and kPa transmitters)
CONVERT = {"degF": (9.0 / 5.0, 32.0), "kPa": (100.0, 0.0), "psi": (14.503773773, 0.0)}


# ---------------------------------------------------------------------------------------- config and model
def bench_config(base: Any, n_equipment: int, prefix: str, source_name: str, per_msg: int,
                 batch_ms: int | None = None) -> Any:
    """The demo config with an MQTT JSON source instead of OPC-UA and presses up to ``n_equipment``."""
    from contextualize.settings import EquipmentSettings, TagMapping
    from ingest.settings import MqttSourceSettings

    equipment = dict(base.assets.equipment)
    tags = dict(base.assets.tags)
    line = 3
    while len(equipment) < n_equipment:
        for p in range(1, 4):
            if len(equipment) >= n_equipment:
                break
            path = f"packaging/line{line}/cell{p}/press{p}"
            equipment[path] = EquipmentSettings(kind="press", description=f"bench press line {line}/{p}")
            for measure, unit, lo, hi in MEASURES:
                tags[f"line{line}.press{p}.{measure}"] = TagMapping(asset=path, measure=measure, unit=unit,
                                                                    min=lo, max=hi)
        line += 1
    src = MqttSourceSettings(name=source_name, topics=[f"{prefix}/in/#"], codec="json", qos=1,
                             tag_from_topic="{name}", tag_path="n", value_path="v", ts_path="t",
                             quality_path=None, samples_path="s", ts_format="epoch_us",
                             client_id=f"fe-bench-{source_name}", clean_start=True, session_expiry_s=0,
                             receive_maximum=max(1000, 65_535 // max(1, per_msg // 10)), batch_ms=batch_ms)
    return base.model_copy(update={
        "assets": base.assets.model_copy(update={"equipment": equipment, "tags": tags}),
        "sources": base.sources.model_copy(update={"opcua": [], "mqtt": [src]}),
        "broker": base.broker.model_copy(update={"topic_prefix": prefix}),
        "metrics": base.metrics.model_copy(update={"enabled": False}),
    })


def value_pool(cfg: Any, seconds: float, seed: int) -> tuple[list[str], np.ndarray]:
    """Tag names and (ticks, tags) values of normal running from the plant simulator, in published units."""
    from edge.simulator.plant import Plant, PlantConfig

    names = sorted(cfg.assets.tags)
    n_lines = max(int(n.split(".")[0][4:]) for n in names)
    plant = Plant(PlantConfig(lines=n_lines, machines=3, seed=seed), start_us=0)
    idx = {t: i for i, t in enumerate(plant.tag_names)}
    ticks = int(seconds * 10)
    vals = np.empty((ticks, len(names)))
    cols = [idx[n] for n in names]
    for k in range(ticks):
        vals[k] = plant.step().values[cols]
    for j, n in enumerate(names):
        unit = cfg.assets.tags[n].unit
        if unit in CONVERT:
            s, o = CONVERT[unit]
            vals[:, j] = vals[:, j] * s + o
    return names, vals


# ------------------------------------------------------------------------------------ publisher, subscriber
def publisher(prefix: str, names: list[str], vals: np.ndarray, rate: float, per_msg: int, duration_s: float,
              start_at: float, result: Any) -> None:
    """Publishes ``rate`` samples/s for ``duration_s`` from ``start_at``; each sample's ts = its send time."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub",
                         protocol=paho.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    n_tags = len(names)
    per_msg = min(per_msg, n_tags)  # one sample per tag per message: (tag, ts) stays unique
    interval = per_msg / rate
    dumps = orjson.dumps
    topic = f"{prefix}/in/bench"
    pos = 0  # position in the round robin over tags
    row = 0  # row of the value pool
    sent = msgs = behind = 0
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.time()
    end = t0 + duration_s
    k = 0
    while True:
        due = t0 + k * interval
        now = time.time()
        if due > now:
            time.sleep(due - now)
            now = time.time()
        elif now - due > 0.1:
            behind += 1
        if now >= end:
            break
        ts = int(now * 1_000_000)
        samples = []
        for _ in range(per_msg):
            samples.append({"n": names[pos], "v": float(vals[row, pos]), "t": ts})
            pos += 1
            if pos == n_tags:
                pos = 0
                row = (row + 1) % len(vals)
        client.publish(topic, dumps({"s": samples}), qos=1)
        sent += per_msg
        msgs += 1
        k += 1
    t1 = time.time()
    deadline = time.time() + 10
    while client.want_write() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()
    result.put({"sent": sent, "messages": msgs, "t0": t0, "t1": t1, "late_sends": behind,
                "cpu_s": time.process_time()})


def subscriber(prefix: str, ready: Any, stop: Any, result: Any) -> None:
    """Records (receive time, insight) of every insight published under ``prefix``."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[tuple[float, bytes, bool]] = []

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        got.append((time.time(), msg.payload, bool(msg.retain)))

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(f"{prefix}/+/+/+/+/+/+/_insights/#", qos=1)

    def on_subscribe(*_: Any) -> None:
        ready.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-sub", protocol=paho.MQTTv311)
    client.on_message = on_message
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    stop.wait()
    client.loop_stop()
    client.disconnect()
    out = []
    for t, payload, retained in got:
        doc = orjson.loads(payload)
        out.append({"recv": t, "retained": retained, "id": doc["insight_id"], "asset": doc["asset"],
                    "start": doc["window"]["start"], "end": doc["window"]["end"],
                    "gated": doc["quality"]["gated"], "severity": doc["severity"]})
    result.put(out)


def _iso_to_s(s: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------------------------------- CPU breakdown
def cpu_snapshot(dbname: str) -> dict[str, float]:
    """CPU seconds so far: this process per thread group (event loop, worker threads, paho's network
    threads, Numba's feature threads), this database's PostgreSQL backends, and the broker (shared)."""
    import re
    import threading

    import psutil

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for t in psutil.Process().threads():
        group = re.sub(r"[-_ ]?\d+$", "", names.get(t.id, "other")) or "other"
        group = re.sub(r"\(.*\)$", "", group).strip()
        out[f"pipeline {group}"] = out.get(f"pipeline {group}", 0.0) + t.user_time + t.system_time
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        info = proc.info
        cmd = " ".join(info.get("cmdline") or [])
        times = info.get("cpu_times")
        if times is None:
            continue
        if info.get("name") == "postgres" and dbname in cmd:
            out["postgres backends"] = out.get("postgres backends", 0.0) + times.user + times.system
        elif info.get("name") == "postgres":
            out["postgres other (server, other databases)"] = (
                out.get("postgres other (server, other databases)", 0.0) + times.user + times.system)
        elif info.get("name") == "mosquitto":
            out["mosquitto (shared)"] = out.get("mosquitto (shared)", 0.0) + times.user + times.system
    return out


def cpu_delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: round(b[k] - a.get(k, 0.0), 2) for k in sorted(b) if b[k] - a.get(k, 0.0) >= 0.05}


# ------------------------------------------------------------------------------------------------ one rate
async def run_rate(args: argparse.Namespace, cfg_base: Any, services: Any, rate: int, names: list[str],
                   vals: np.ndarray, arm: str = "") -> dict[str, Any]:
    """``arm``: a suffix of the source name, so repeated runs at one rate count their own stored rows."""
    from edge.app.pipeline import build_pipeline

    prefix = f"fe-bench-e2e-{secrets.token_hex(3)}"
    source_name = f"bench-{rate}{arm}"
    cfg = bench_config(cfg_base, args.equipment, prefix, source_name, args.per_msg, args.batch_ms)
    lateness = cfg.inference.allowed_lateness_s
    ctx = mp.get_context("spawn")
    sub_ready, sub_stop, sub_q, pub_q = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    sub = ctx.Process(target=subscriber, args=(prefix, sub_ready, sub_stop, sub_q), daemon=True)
    sub.start()
    pipeline = build_pipeline(cfg, historian_dsn=services.writer_dsn, broker_url=services.mqtt_url)
    source = pipeline.components[source_name]
    # when each inference tick that closed windows started (wall time), per window end: the tick wait
    stage = pipeline.components["inference"]
    tick_at: dict[float, float] = {}
    tick_done: dict[float, float] = {}  # when that tick had handed its insights to the historian queue
    orig_tick = stage.tick

    async def timed_tick(now_us: int | None = None) -> Any:
        t = time.time()
        res = await orig_tick(now_us)
        if res.insights:
            t_done = time.time()
            for _, _, batch in res.insights:
                for e in batch.column("window_end").cast("int64").to_pylist():
                    tick_at.setdefault(e / 1e6, t)
                    tick_done.setdefault(e / 1e6, t_done)
        return res

    stage.tick = timed_tick
    sup_task = asyncio.create_task(pipeline.supervisor.run())
    t_wait = time.monotonic() + 30
    while not (source.subscribed.is_set() and sub_ready.is_set()) and time.monotonic() < t_wait:
        await asyncio.sleep(0.05)
    if not source.subscribed.is_set():
        raise RuntimeError("the pipeline's MQTT source did not subscribe within 30 s")
    # the load starts once the stage can score: a cold Numba cache (kernels changed) takes tens of seconds
    warmed = getattr(stage, "warmed", None)
    if warmed is not None:
        await asyncio.wait_for(warmed.wait(), 300)
    await asyncio.sleep(2.0)
    start_at = time.time() + 1.0
    pub = ctx.Process(target=publisher, args=(prefix, names, vals, float(rate), args.per_msg, args.duration,
                                              start_at, pub_q), daemon=True)
    pub.start()
    qmax = {"q_in": 0, "q_hist": 0, "q_infer": 0}
    trace: list[tuple[float, int]] = []
    qtrace: list[tuple[float, int]] = []
    load0 = os.getloadavg()[0]

    async def monitor() -> None:
        while True:
            trace.append((time.time(), int(source.counters["samples"])))
            qtrace.append((time.time(), pipeline.q_hist.qsize()))
            for k in qmax:
                q = getattr(pipeline, k)
                if q is not None:
                    qmax[k] = max(qmax[k], q.qsize())
            await asyncio.sleep(0.1)

    mon = asyncio.create_task(monitor())
    cpu0 = time.process_time()
    from psycopg.conninfo import conninfo_to_dict

    dbname = str(conninfo_to_dict(services.writer_dsn)["dbname"])
    snap0 = cpu_snapshot(dbname)
    await asyncio.sleep(max(0.0, start_at + args.duration - time.time()))
    pub_res = await asyncio.to_thread(pub_q.get, True, 60)
    await asyncio.to_thread(pub.join, 10)
    cpu_pipeline = time.process_time() - cpu0
    cpu_split = cpu_delta(snap0, cpu_snapshot(dbname))
    load1 = os.getloadavg()[0]
    # drain: until the source has everything published (or 30 s), then the last windows and the outbox
    drain_deadline = time.time() + 30
    while source.counters["samples"] < pub_res["sent"] and time.time() < drain_deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.2)
    done_at = next((t for t, n in trace if n >= pub_res["sent"]), math.nan)
    caught_up_s = done_at - pub_res["t1"]
    await asyncio.sleep(lateness + cfg.inference.tick_s + 3.0)
    mon.cancel()
    pipeline.supervisor.request_stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(sup_task, 60)
    sub_stop.set()
    insights = await asyncio.to_thread(sub_q.get, True, 60)
    await asyncio.to_thread(sub.join, 10)

    # the outbox timestamps for a breakdown: historian transaction (created_at), PUBACK marked (published_at)
    import psycopg

    with psycopg.connect(services.superuser_dsn) as conn:
        outbox = {r[0]: (r[1].timestamp(), r[2].timestamp() if r[2] else math.nan) for r in conn.execute(
            "SELECT insight_id, created_at, published_at FROM insights_outbox").fetchall()}
        stored = conn.execute("SELECT count(*) FROM samples WHERE source = %s", (source_name,)).fetchone()
        dead: dict[str, int] = dict(conn.execute(
            "SELECT reason, count(*) FROM dead_letters WHERE source = %s GROUP BY 1",
            (source_name,)).fetchall())
    t0, t1 = pub_res["t0"], pub_res["t1"]
    seen: set[str] = set()
    lat, own, to_commit, commit_to_recv, ends = [], [], [], [], []
    tick_wait, tick_to_commit, tick_run, queue_to_txn = [], [], [], []
    for ins in insights:
        if ins["retained"] or ins["id"] in seen:
            continue
        seen.add(ins["id"])
        start, end = _iso_to_s(ins["start"]), _iso_to_s(ins["end"])
        if start < t0 or end + lateness > t1:
            continue
        lat.append(ins["recv"] - end)
        ends.append(end)
        own.append(ins["recv"] - end - lateness)
        if ins["id"] in outbox:
            created = outbox[ins["id"]][0]
            to_commit.append(created - end - lateness)
            commit_to_recv.append(ins["recv"] - created)
            if end in tick_at:
                tick_to_commit.append(created - tick_at[end])
                tick_run.append(tick_done[end] - tick_at[end])
                queue_to_txn.append(created - tick_done[end])
        if end in tick_at:
            tick_wait.append(tick_at[end] - end - lateness)
    # sustained: the source's samples over the middle of the run (after 5 s, to the publisher's end)
    mid = [(t, n) for t, n in trace if t0 + 5 <= t <= t1]
    sustained = (mid[-1][1] - mid[0][1]) / (mid[-1][0] - mid[0][0]) if len(mid) >= 2 else math.nan
    # drift: median latency of the last third of the run minus the first third (grows when falling behind)
    third = (t1 - t0) / 3
    first = [x for x, e in zip(lat, ends, strict=True) if e < t0 + third]
    last = [x for x, e in zip(lat, ends, strict=True) if e >= t1 - third]
    drift = statistics.median(last) - statistics.median(first) if first and last else math.nan
    # per 10 s of window end: median latency and the historian queue's deepest point
    timeline = []
    for b0 in np.arange(t0, t1, 10.0):
        xs = [x for x, e in zip(lat, ends, strict=True) if b0 <= e < b0 + 10]
        qs = [q for t, q in qtrace if b0 <= t < b0 + 10]
        if xs:
            timeline.append((round(b0 - t0), statistics.median(xs), max(qs) if qs else 0))
    return {
        "tick_wait": tick_wait, "tick_to_commit": tick_to_commit, "tick_run": tick_run,
        "queue_to_txn": queue_to_txn, "ends": ends,
        "drift": drift, "timeline": timeline, "dead": dead, "load": (load0, load1),
        "rate": rate, "sent": pub_res["sent"], "offered_actual": pub_res["sent"] / (t1 - t0),
        "late_sends": pub_res["late_sends"], "ingested": int(source.counters["samples"]),
        "stored": int(stored[0]) if stored else 0, "sustained": sustained, "caught_up_s": caught_up_s,
        "n": len(lat), "lat": lat, "own": own, "to_commit": to_commit, "commit_to_recv": commit_to_recv,
        "lateness": lateness, "tick": cfg.inference.tick_s, "qmax": qmax, "cpu_pipeline": cpu_pipeline,
        "cpu_pub": pub_res["cpu_s"], "cpu_split": cpu_split, "wall": t1 - t0, "insights_all": len(seen),
        "equipment": len(cfg.assets.equipment), "tags": len(cfg.assets.tags), "t0": t0, "t1": t1,
    }


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    return float(np.percentile(np.asarray(xs), q))


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| offered samples/s | sent/s | ingested/s (sustained) | stored rows | insights | latency p50 s "
        "| latency p99 s | max s | own p50 s | own p99 s | close wait p50 | tick->commit p50 (p99) "
        "| commit->MQTT p50 (p99) |",
        "|" + " ---: |" * 13,
    ]
    for r in results:
        lines.append(
            f"| {r['rate']:,} | {r['offered_actual']:,.0f} | {r['sustained']:,.0f} | {r['stored']:,} "
            f"| {r['n']} | {pct(r['lat'], 50):.3f} | {pct(r['lat'], 99):.3f} | "
            f"{max(r['lat']) if r['lat'] else math.nan:.3f} | {pct(r['own'], 50):.3f} | "
            f"{pct(r['own'], 99):.3f} | {pct(r['tick_wait'], 50):.3f} | {pct(r['tick_to_commit'], 50):.3f} "
            f"({pct(r['tick_to_commit'], 99):.3f}) | {pct(r['commit_to_recv'], 50):.3f} "
            f"({pct(r['commit_to_recv'], 99):.3f}) |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    import psycopg

    from edge.app.demo.run import DemoOptions, demo_config, start_services, train_baseline
    from edge.core.ports import free_port

    dbname = f"fe_bench_e2e_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    tmp = Path(tempfile.mkdtemp(prefix="fe-bench-e2e-"))
    quiet = (lambda m: None) if args.quiet else (lambda m: print(m, flush=True))
    services = None
    results: list[dict[str, Any]] = []
    try:
        opts = DemoOptions(historian_dsn=f"postgresql://postgres@127.0.0.1:5432/{dbname}",
                           mqtt_url=f"mqtt://{MQTT_HOST}:{MQTT_PORT}", data_dir=tmp,
                           baseline_s=args.baseline_s, out=quiet)
        for attempt in range(5):  # the roles are cluster-wide: a concurrent init elsewhere can collide
            try:
                services = start_services(opts)
                break
            except psycopg.errors.InternalError as exc:
                if attempt == 4:
                    raise
                print(f"historian init collided ({exc}); again", flush=True)
                time.sleep(1.0 + attempt)
        assert services is not None
        base = demo_config(opts, services, free_port(), free_port())
        cfg0 = bench_config(base, args.equipment, "x", "x", args.per_msg)
        t = time.perf_counter()
        train_baseline(cfg0, opts)
        print(f"baseline trained in {time.perf_counter() - t:.1f} s; database {dbname}", flush=True)
        names, vals = value_pool(cfg0, 120.0, seed=11)
        for rate in args.rates:
            print(f"rate {rate:,} samples/s: {args.duration:.0f} s, {len(names)} tags on "
                  f"{len(cfg0.assets.equipment)} presses, {args.per_msg} samples a message ...", flush=True)
            r = await run_rate(args, base, services, rate, names, vals)
            results.append(r)
            print(f"  sent {r['sent']:,} ({r['offered_actual']:,.0f}/s, late sends {r['late_sends']}), "
                  f"ingested {r['ingested']:,}, stored {r['stored']:,}, sustained {r['sustained']:,.0f}/s, "
                  f"caught up {r['caught_up_s']:.1f} s after the publisher stopped; queues max {r['qmax']}; "
                  f"pipeline CPU {r['cpu_pipeline']:.1f} s over {r['wall']:.0f} s, publisher CPU "
                  f"{r['cpu_pub']:.1f} s; insights counted {r['n']} of {r['insights_all']}", flush=True)
            print(f"  latency p50 {pct(r['lat'], 50):.3f} s p99 {pct(r['lat'], 99):.3f} s; own (minus "
                  f"{r['lateness']:.1f} s lateness) p50 {pct(r['own'], 50):.3f} p99 {pct(r['own'], 99):.3f}; "
                  f"drift (last third - first third, medians) {r['drift']:+.3f} s",
                  flush=True)
            print(f"  tick->commit split: the tick itself (closing, features, scoring, emit) p50 "
                  f"{pct(r['tick_run'], 50):.3f} p99 {pct(r['tick_run'], 99):.3f} s; historian queue to the "
                  f"insights' transaction p50 {pct(r['queue_to_txn'], 50):.3f} p99 "
                  f"{pct(r['queue_to_txn'], 99):.3f} s", flush=True)
            print(f"  dead letters {r['dead'] or 0}; load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}; "
                  "per 10 s (s from start, median latency, deepest historian queue): "
                  + ", ".join(f"{a}s {b:.2f} q{c}" for a, b, c in r["timeline"]), flush=True)
            print(f"  CPU s over the load ({r['wall']:.0f} s wall, 2 cores = {2 * r['wall']:.0f} CPU s): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_split"].items()), flush=True)
    finally:
        if services is not None:
            services.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")],
                    default=[50_000, 25_000, 10_000],
                    help="offered samples/s, comma separated (one run each)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load per rate")
    ap.add_argument("--equipment", type=int, default=60, help="presses (4 tags each; the demo's 6 first)")
    ap.add_argument("--per-msg", type=int, default=100, help="samples per MQTT message")
    ap.add_argument("--baseline-s", type=float, default=900.0, help="simulated seconds to train on")
    ap.add_argument("--batch-ms", type=int, default=None,
                    help="the MQTT source's batch_ms (default: the product's, [pipeline] batch_ms)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = asyncio.run(main_async(args))
    print()
    print(report(results))
    for r in results:
        if r["lat"]:
            print(f"rate {r['rate']:,}: median latency {statistics.median(r['lat']):.3f} s over {r['n']} "
                  f"insights; {r['equipment']} presses, {r['tags']} tags")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
