"""MQTT ingest benchmarks, each side by side with a bare paho subscriber that only counts, in the same run.

Method (drain rate): a private mosquitto (queues QoS 0 for offline persistent sessions, no queue limits) is
loaded with N messages for a persistent session while the subscriber is away; then the subscriber connects
and the time until it has everything is measured. So the figure is what the subscriber can take, not what a
publisher on the same 2 cores can offer. Bare and ours alternate, ``--repeat`` times each; medians reported.

Scenarios:
  single   single-sample JSON ({"ts": ISO, "value": v, "quality": 0}) -> SAMPLES Arrow batches
  batched  100 samples a message, ISO timestamps -> SAMPLES Arrow batches
  sparkplug  Sparkplug B DDATA with 100 metrics (aliases) -> SAMPLES Arrow batches

Run: .venv/bin/python bench/bench_mqtt.py [--scenario single batched sparkplug] [--repeat 3]
     [--json-variant orjson arrow-1thread arrow-threads file]   (JSON codec variants, interleaved in the same
     run; default: the source's defaults only; "file" = the JsonCodec of --codec-file, e.g. an older version:
     git show REV:ingest/codecs/json/codec.py > /tmp/json_codec_old.py; "workers0", "workers1", "workers2":
     the default codec with that many decode worker processes, 0 = decoding in the network thread; "noshare":
     one worker, and the network thread never decodes a batch because the worker is busy; every variant
     other than default, file, noshare and workersN passes its codec object, so it decodes in the thread)
CPU is the benchmark process's own plus that of the child processes it reaped during the run (the decode
workers; the private mosquitto is reaped only at the end, so it is not in it). "worker CPU" is that part.
     [--codec-only]   (no broker: JsonCodec.decode + to_samples in process, 100 batched messages a call)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.app.plugins import make_codec
from edge.core.envelope import Envelope
from edge.core.settings import BrokerSettings
from ingest.codecs import Decoded
from ingest.codecs.json.codec import JsonCodec
from ingest.codecs.sparkplug.payload import DataType, make_payload
from ingest.settings import MqttSourceSettings
from ingest.sources.mqtt import MqttSource
from tests.fixtures.services import MosquittoProcess

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _client(port: int, client_id: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    c.max_queued_messages_set(0)
    c.max_inflight_messages_set(1000)
    return c


def _props() -> Properties:
    p = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    p.SessionExpiryInterval = 600
    p.ReceiveMaximum = 10_000
    return p


def make_session(port: int, client_id: str, topic: str) -> None:
    """Create the persistent session (subscribed at QoS 0) and leave."""
    c = _client(port, client_id)
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.connect("127.0.0.1", port, clean_start=False, properties=_props())
    c.loop_start()
    c.subscribe(topic, qos=0)
    if not done.wait(10):
        raise RuntimeError("no SUBACK")
    c.disconnect()
    c.loop_stop()


def drop_session(port: int, client_id: str) -> None:
    """End a persistent session (clean start, expiry 0), so that it queues nothing of the later loads."""
    c = _client(port, client_id)
    p = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    p.SessionExpiryInterval = 0
    done = threading.Event()
    c.on_connect = lambda *a: done.set()
    c.connect("127.0.0.1", port, clean_start=True, properties=p)
    c.loop_start()
    if not done.wait(10):
        raise RuntimeError("no CONNACK")
    c.disconnect()
    c.loop_stop()


def load(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish everything (QoS 1: nothing is dropped on the way in) and wait until the broker has it."""
    c = _client(port, f"load-{uuid.uuid4().hex[:6]}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    info = None
    for topic, payload in messages:
        while True:
            info = c.publish(topic, payload, qos=1)
            if info.rc == paho.MQTT_ERR_SUCCESS:
                break
            time.sleep(0.001)
    assert info is not None
    info.wait_for_publish(120)
    c.disconnect()
    c.loop_stop()


def bare(port: int, client_id: str, n_messages: int) -> float:
    """Seconds a bare paho subscriber takes to receive the queued messages, counting only."""
    c = _client(port, client_id)
    count = 0
    done = threading.Event()

    def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count >= n_messages:
            done.set()

    c.on_message = on_message
    t0 = time.perf_counter()
    c.connect("127.0.0.1", port, clean_start=False, properties=_props())
    c.loop_start()
    if not done.wait(300):
        raise RuntimeError(f"bare subscriber got {count} of {n_messages}")
    dt = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return dt


JSON_VARIANTS: dict[str, dict[str, bool]] = {
    "default": {},
    "file": {},
    "arrow-threads": {"arrow_json": True, "arrow_threads": True},
    "arrow-1thread": {"arrow_json": True, "arrow_threads": False},
    "orjson": {"arrow_json": False},
    "workers0": {},
    "workers1": {},
    "workers2": {},
    "noshare": {},  # one worker, the network thread never decodes for it (share_decoding=False)
}


def children_cpu() -> float:
    """CPU seconds of the child processes reaped so far (the decode workers, once a run has ended)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


CODEC_FILE: list[str] = []  # --codec-file


def json_codec_class(variant: str) -> Any:
    """JsonCodec, or for the "file" variant the JsonCodec class of the module at --codec-file."""
    if variant != "file":
        return JsonCodec
    spec = importlib.util.spec_from_file_location("json_codec_from_file", CODEC_FILE[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.JsonCodec


def codec_only(variants: list[str], repeat: int, calls: int = 30) -> None:
    """CPU and wall time of decode + to_samples, 100 batched messages (10,000 samples) a call, in process."""
    msgs = batched_messages(100, "p")
    kw = {"topic_pattern": "p/{line}/{machine}/{measure}", "tag_template": "{line}.{machine}.{measure}",
          "samples_path": "samples"}
    codecs = {v: json_codec_class(v)(**kw, **JSON_VARIANTS[v]) for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    wall: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeat):
        for v, codec in codecs.items():
            def once(codec: Any = codec) -> int:
                out = Decoded("bench")
                codec.decode(msgs, 0, out)
                return int(out.to_samples(0).num_rows)
            assert once() == 10_000
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(calls):
                once()
            cpu[v].append((time.process_time() - c0) / (calls * len(msgs)) * 1e6)
            wall[v].append((time.perf_counter() - w0) / (calls * len(msgs)) * 1e6)
    for v in variants:
        c, w = statistics.median(cpu[v]), statistics.median(wall[v])
        print(f"== codec only [{v}]: CPU {c:.1f} us/msg ({c * 10:.0f} ns/sample), wall {w:.1f} us/msg "
              f"(medians of {repeat})", flush=True)


def ours(port: int, client_id: str, topic: str, n_samples: int, variant: str = "default",
         **kw: Any) -> tuple[float, int]:
    """Seconds MqttSource takes to turn the queued messages into SAMPLES batches; and the batch count."""

    async def main() -> tuple[float, int]:
        got = 0
        batches = 0
        done = asyncio.Event()

        async def emit(env: Envelope) -> None:
            nonlocal got, batches
            if env.kind == "samples":
                got += env.num_rows
                batches += 1
                if got >= n_samples:
                    done.set()
            env.acknowledge()

        custom = variant not in ("default", "noshare") and not variant.startswith("workers")
        if variant.startswith("workers"):
            kw["decode_workers"] = int(variant.removeprefix("workers"))
        elif variant == "noshare":
            kw["decode_workers"] = 1
        elif custom:  # a codec variant decodes in the network thread (workers build the settings' codec)
            kw["decode_workers"] = 0
        settings = MqttSourceSettings(
            name="bench",
            topics=[topic],
            client_id=client_id,
            clean_start=False,
            session_expiry_s=600,
            qos=0,
            **kw,
        )
        broker = BrokerSettings(url=f"mqtt://127.0.0.1:{port}")  # type: ignore[call-arg]
        codec = make_codec(settings)
        if custom:
            codec = json_codec_class(variant)(
                topic_pattern=settings.topic_pattern, tag_template=settings.tag_from_topic,
                value_path=settings.value_path, ts_path=settings.ts_path, quality_path=settings.quality_path,
                samples_path=settings.samples_path, **JSON_VARIANTS[variant],
            )
        source = MqttSource(settings, broker, emit, codec=codec, share_decoding=variant != "noshare")
        t0 = time.perf_counter()
        task = asyncio.create_task(source.run())
        try:
            await asyncio.wait_for(done.wait(), 300)
        except TimeoutError:
            raise RuntimeError(f"MqttSource got {got} of {n_samples} samples") from None
        dt = time.perf_counter() - t0
        await source.stop()
        await task
        if source.decode_workers:  # the thread decodes until the worker has started (a one-time cost)
            c = source.counters
            print(f"    batches decoded by the worker {c['batches_decoded_by_workers']}, in the thread "
                  f"{c['batches_decoded_in_thread']} (while it started) and "
                  f"{c['batches_decoded_in_thread_workers_busy']} (while the worker was busy)", flush=True)
        return dt, batches

    return asyncio.run(main())


def single_messages(n: int, prefix: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        ts = (T0 + timedelta(milliseconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out.append(
            (f"{prefix}/line1/m{i % 50}/temp", orjson.dumps({"ts": ts, "value": i * 0.5, "quality": 0}))
        )
    return out


def batched_messages(n: int, prefix: str, per: int = 100) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        base = T0 + timedelta(seconds=i)
        samples = [
            {
                "ts": (base + timedelta(milliseconds=k))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "value": k * 0.25 + i,
                "quality": 0,
            }
            for k in range(per)
        ]
        out.append((f"{prefix}/line1/m{i % 50}/vib", orjson.dumps({"samples": samples})))
    return out


def sparkplug_messages(n: int, group: str, metrics: int = 100) -> list[tuple[str, bytes]]:
    base = f"spBv1.0/{group}"
    out = [
        (f"{base}/NBIRTH/node1", make_payload([("bdSeq", None, DataType.Int64, 0)], seq=0)),
        (
            f"{base}/DBIRTH/node1/dev1",
            make_payload([(f"m{k}", k + 1, DataType.Double, 0.0) for k in range(metrics)], seq=1),
        ),
    ]
    t_ms = int(T0.timestamp() * 1000)
    for i in range(n):
        out.append(
            (
                f"{base}/DDATA/node1/dev1",
                make_payload(
                    [(None, k + 1, DataType.Double, i + k * 0.01) for k in range(metrics)],
                    seq=(i + 2) % 256,
                    timestamp_ms=t_ms + i,
                ),
            )
        )
    return out


def broker_cpu(broker: MosquittoProcess) -> float:
    """CPU seconds the private mosquitto has used so far (user + system, from /proc), 0.0 where unknown."""
    if broker.proc is None:
        return 0.0
    try:
        fields = Path(f"/proc/{broker.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def scenario(name: str, broker: MosquittoProcess, repeat: int, variants: list[str],
             messages: int | None = None) -> list[dict[str, Any]]:
    port = broker.port
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    kw: dict[str, Any] = {}
    if name == "single":
        n_msgs = messages or 200_000
        msgs = single_messages(n_msgs, prefix)
        per = 1
        topic = f"{prefix}/#"
        kw = {
            "topic_pattern": prefix + "/{line}/{machine}/{measure}",
            "tag_from_topic": "{line}.{machine}.{measure}",
        }
    elif name == "batched":
        n_msgs = messages or 20_000
        msgs = batched_messages(n_msgs, prefix)
        per = 100
        topic = f"{prefix}/#"
        kw = {
            "topic_pattern": prefix + "/{line}/{machine}/{measure}",
            "tag_from_topic": "{line}.{machine}.{measure}",
            "samples_path": "samples",
        }
    else:
        group = f"bench{uuid.uuid4().hex[:6]}"
        n_msgs = messages or 20_000
        msgs = sparkplug_messages(n_msgs, group)
        per = 100
        topic = f"spBv1.0/{group}/#"
        kw = {"codec": "sparkplug"}
    n_samples = n_msgs * per
    whos = ["bare", *(f"ours:{v}" for v in variants)]
    wall: dict[str, list[float]] = {w: [] for w in whos}
    cpu: dict[str, list[float]] = {w: [] for w in whos}
    batches: dict[str, list[int]] = {w: [] for w in whos}
    worker_cpu: dict[str, list[float]] = {w: [] for w in whos}
    mosq_cpu: dict[str, list[float]] = {w: [] for w in whos}
    for r in range(repeat):
        order = whos if r % 2 == 0 else whos[::-1]
        for who in order:
            cid = f"{who.replace(':', '-')}-{uuid.uuid4().hex[:6]}"
            make_session(port, cid, topic)
            load(port, msgs)
            cpu0, child0, mosq0 = time.process_time(), children_cpu(), broker_cpu(broker)
            if who == "bare":
                wall[who].append(bare(port, cid, len(msgs)))
            else:
                dt, nb = ours(port, cid, topic, n_samples, variant=who.split(":", 1)[1], **kw)
                wall[who].append(dt)
                batches[who].append(nb)
            child = children_cpu() - child0  # decode workers, reaped when the source stopped
            mosq_cpu[who].append(broker_cpu(broker) - mosq0)
            cpu[who].append(time.process_time() - cpu0 + child)
            worker_cpu[who].append(child)
            drop_session(port, cid)  # else every later load is queued for this session too
            print(f"  {name} run {r + 1} {who}: {wall[who][-1]:.2f} s, CPU {cpu[who][-1]:.2f} s "
                  f"(workers {child:.2f} s), broker CPU {mosq_cpu[who][-1]:.2f} s, "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
    b = statistics.median(wall["bare"])
    b_cpu = statistics.median(cpu["bare"])
    results = []
    for who in whos[1:]:
        o = statistics.median(wall[who])
        o_cpu = statistics.median(cpu[who])
        results.append({
            "scenario": name,
            "variant": who.split(":", 1)[1],
            "messages": len(msgs),
            "samples": n_samples,
            "repeat": repeat,
            "bare_msgs_per_s": len(msgs) / b,
            "ours_msgs_per_s": len(msgs) / o,
            "ours_samples_per_s": n_samples / o,
            "ratio": b / o,
            "batches": statistics.median(batches[who]),
            "bare_cpu_us_per_msg": b_cpu / len(msgs) * 1e6,
            "ours_cpu_us_per_msg": o_cpu / len(msgs) * 1e6,
            "ours_cpu_ns_per_sample": o_cpu / n_samples * 1e9,
            "cpu_ratio": b_cpu / o_cpu,
            "bare_runs_s": [round(x, 3) for x in wall["bare"]],
            "ours_runs_s": [round(x, 3) for x in wall[who]],
            "ours_runs_cpu_s": [round(x, 3) for x in cpu[who]],
            "ours_worker_cpu_us_per_msg": statistics.median(worker_cpu[who]) / len(msgs) * 1e6,
            "broker_cpu_us_per_msg_bare": statistics.median(mosq_cpu["bare"]) / len(msgs) * 1e6,
            "broker_cpu_us_per_msg_ours": statistics.median(mosq_cpu[who]) / len(msgs) * 1e6,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        })
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--scenario",
        nargs="+",
        default=["single", "batched", "sparkplug"],
        choices=["single", "batched", "sparkplug"],
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json-variant", nargs="+", default=["default"], choices=list(JSON_VARIANTS),
                    help="JSON codec variants measured side by side (batched and single scenarios)")
    ap.add_argument("--codec-file", help='a json_codec.py whose JsonCodec is the variant "file"')
    ap.add_argument("--codec-only", action="store_true", help="no broker: the codec alone, in process")
    ap.add_argument("--messages", type=int, default=None,
                    help="messages a run (default: 200,000 single, 20,000 batched and sparkplug); more "
                    "messages spread the source's start (the decode worker's imports, about 0.2 s) over a "
                    "longer drain")
    args = ap.parse_args(argv)
    if "file" in args.json_variant:
        if not args.codec_file:
            ap.error('--json-variant file needs --codec-file')
        CODEC_FILE.append(args.codec_file)
    if args.codec_only:
        codec_only(args.json_variant, max(args.repeat, 1))
        return 0
    broker = MosquittoProcess(
        extra_conf="max_queued_messages 0\nmax_queued_bytes 0\nqueue_qos0_messages true\n"
        "max_inflight_messages 0\n"
    ).start()
    report: Callable[[dict[str, Any]], None] = lambda r: print(orjson.dumps(r).decode(), flush=True)  # noqa: E731
    print(f"load average at start: {[round(x, 2) for x in os.getloadavg()]}", flush=True)
    try:
        for name in args.scenario:
            variants = args.json_variant if name != "sparkplug" else ["default"]
            for res in scenario(name, broker, args.repeat, variants, args.messages):
                report(res)
                print(
                    f"== {name} [{res['variant']}]: bare {res['bare_msgs_per_s']:,.0f} msg/s | "
                    f"ours {res['ours_msgs_per_s']:,.0f} msg/s = {res['ours_samples_per_s']:,.0f} samples/s"
                    f" | ratio {res['ratio']:.2f} | CPU/msg bare {res['bare_cpu_us_per_msg']:.1f} us, ours "
                    f"{res['ours_cpu_us_per_msg']:.1f} us (CPU ratio {res['cpu_ratio']:.2f}; ours "
                    f"{res['ours_cpu_ns_per_sample']:.0f} ns CPU/sample, of it in workers "
                    f"{res['ours_worker_cpu_us_per_msg']:.1f} us/msg; broker CPU/msg bare "
                    f"{res['broker_cpu_us_per_msg_bare']:.1f} us, ours "
                    f"{res['broker_cpu_us_per_msg_ours']:.1f} us)"
                    f" | load average {res['loadavg_end']}",
                    flush=True,
                )
    finally:
        broker.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
