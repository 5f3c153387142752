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
"""

from __future__ import annotations

import argparse
import asyncio
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

from edge.envelope import Envelope
from edge.settings import BrokerSettings
from ingest.codecs.sparkplug import DataType, make_payload
from ingest.mqtt import MqttSource
from ingest.settings import MqttSourceSettings
from tests.services import MosquittoProcess

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


def ours(port: int, client_id: str, topic: str, n_samples: int, **kw: Any) -> tuple[float, int]:
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
        source = MqttSource(settings, broker, emit)
        t0 = time.perf_counter()
        task = asyncio.create_task(source.run())
        try:
            await asyncio.wait_for(done.wait(), 300)
        except TimeoutError:
            raise RuntimeError(f"MqttSource got {got} of {n_samples} samples") from None
        dt = time.perf_counter() - t0
        await source.stop()
        await task
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


def scenario(name: str, broker: MosquittoProcess, repeat: int) -> dict[str, Any]:
    port = broker.port
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    kw: dict[str, Any] = {}
    if name == "single":
        n_msgs = 200_000
        msgs = single_messages(n_msgs, prefix)
        per = 1
        topic = f"{prefix}/#"
        kw = {
            "topic_pattern": prefix + "/{line}/{machine}/{measure}",
            "tag_from_topic": "{line}.{machine}.{measure}",
        }
    elif name == "batched":
        n_msgs = 20_000
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
        n_msgs = 20_000
        msgs = sparkplug_messages(n_msgs, group)
        per = 100
        topic = f"spBv1.0/{group}/#"
        kw = {"codec": "sparkplug"}
    n_samples = n_msgs * per
    bare_s: list[float] = []
    ours_s: list[float] = []
    bare_cpu: list[float] = []
    ours_cpu: list[float] = []
    batches: list[int] = []
    for r in range(repeat):
        for who in ("bare", "ours") if r % 2 == 0 else ("ours", "bare"):
            cid = f"{who}-{uuid.uuid4().hex[:6]}"
            make_session(port, cid, topic)
            load(port, msgs)
            cpu0 = time.process_time()
            if who == "bare":
                bare_s.append(bare(port, cid, len(msgs)))
                bare_cpu.append(time.process_time() - cpu0)
            else:
                dt, nb = ours(port, cid, topic, n_samples, **kw)
                ours_s.append(dt)
                ours_cpu.append(time.process_time() - cpu0)
                batches.append(nb)
            print(
                f"  {name} run {r + 1} {who}: {(bare_s if who == 'bare' else ours_s)[-1]:.2f} s", flush=True
            )
    b, o = statistics.median(bare_s), statistics.median(ours_s)
    res = {
        "scenario": name,
        "messages": len(msgs),
        "samples": n_samples,
        "repeat": repeat,
        "bare_msgs_per_s": len(msgs) / b,
        "ours_msgs_per_s": len(msgs) / o,
        "ours_samples_per_s": n_samples / o,
        "ratio": b / o,
        "batches": statistics.median(batches),
        "bare_cpu_us_per_msg": statistics.median(bare_cpu) / len(msgs) * 1e6,
        "ours_cpu_us_per_msg": statistics.median(ours_cpu) / len(msgs) * 1e6,
        "cpu_ratio": statistics.median(bare_cpu) / statistics.median(ours_cpu),
        "bare_runs_s": [round(x, 3) for x in bare_s],
        "ours_runs_s": [round(x, 3) for x in ours_s],
    }
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--scenario",
        nargs="+",
        default=["single", "batched", "sparkplug"],
        choices=["single", "batched", "sparkplug"],
    )
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    broker = MosquittoProcess(
        extra_conf="max_queued_messages 0\nmax_queued_bytes 0\nqueue_qos0_messages true\n"
        "max_inflight_messages 0\n"
    ).start()
    report: Callable[[dict[str, Any]], None] = lambda r: print(orjson.dumps(r).decode(), flush=True)  # noqa: E731
    try:
        for name in args.scenario:
            res = scenario(name, broker, args.repeat)
            report(res)
            print(
                f"== {name}: bare {res['bare_msgs_per_s']:,.0f} msg/s | "
                f"ours {res['ours_msgs_per_s']:,.0f} msg/s"
                f" = {res['ours_samples_per_s']:,.0f} samples/s | ratio {res['ratio']:.2f} | CPU/msg bare "
                f"{res['bare_cpu_us_per_msg']:.1f} us, ours {res['ours_cpu_us_per_msg']:.1f} us "
                f"(CPU ratio {res['cpu_ratio']:.2f})",
                flush=True,
            )
    finally:
        broker.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
