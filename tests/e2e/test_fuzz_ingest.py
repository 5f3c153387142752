"""Fuzzed input into a running appliance: thousands of seeded cases published through a real Mosquitto (the
shipped broker config) into ``build_pipeline`` (MQTT sources, JSON and Sparkplug B, the process step, the
historian sink on a real PostgreSQL). Malformed JSON, random bytes, 10 MB payloads, deep nesting, NaN and
inf, wrong types, timestamps in 1970 and next year, unknown tags, garbage protobuf on Sparkplug topics,
between good messages. Checked: no component failed (no supervisor restart), every rejection is a
``dead_letters`` row with its reason, and every good message is stored, by (tag, ts)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import psycopg
import pytest
from google.protobuf.message import DecodeError
from paho.mqtt.enums import CallbackAPIVersion

from edge.app.config import AppConfig
from edge.app.pipeline import build_pipeline
from edge.core.metrics import Metrics
from edge.sinks.historian.migrate import migrate
from ingest.codecs.sparkplug.payload import BDSEQ_METRIC, DataType, make_payload, pb
from tests.e2e.test_shipped_delivery import ShippedMosquitto
from tests.fixtures.delivery_helpers import async_wait_until

SEED = 20261207
CASES = 3000
GOOD_TAGS = [f"line{line}.press{m}.{meas}" for line in (1, 2) for m in (1, 2, 3)
             for meas in ("vibration", "temperature")]


@dataclass
class Plan:
    """What was published: messages in order, the (tag, ts_us) every good one must store, bad ones by kind."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    good: set[tuple[str, int]] = field(default_factory=set)
    bad: Counter[str] = field(default_factory=Counter)


def make_plan(prefix: str, group: str, seed: int = SEED, n: int = CASES) -> Plan:
    rng = random.Random(seed)
    plan = Plan()
    now_us = time.time_ns() // 1000
    t0 = now_us - 3600 * 1_000_000  # good timestamps: the last hour, one distinct ts per good message
    k = 0

    def ts() -> int:
        nonlocal k
        k += 1
        return t0 + k * 1000

    def good_json(tag: str | None = None) -> None:
        tag = tag or rng.choice(GOOD_TAGS)
        t = ts()
        plan.messages.append((f"{prefix}/{tag}", orjson.dumps({"ts": t, "value": rng.uniform(-100, 100)})))
        plan.good.add((tag, t))

    def bad(kind: str, payload: bytes, topic: str | None = None) -> None:
        plan.messages.append((topic or f"{prefix}/{rng.choice(GOOD_TAGS)}", payload))
        plan.bad[kind] += 1

    sp_seq = 0
    node = f"{group}/NDATA/node1"
    plan.messages.append((f"spBv1.0/{group}/NBIRTH/node1", make_payload(
        [(BDSEQ_METRIC, None, DataType.Int64, 0), ("m", 1, DataType.Double, 0.0)], seq=0,
        timestamp_ms=t0 // 1000)))
    plan.good.add((f"{group}/node1/m", (t0 // 1000) * 1000))

    def good_sparkplug() -> None:
        nonlocal sp_seq
        sp_seq = (sp_seq + 1) % 256
        t_ms = ts() // 1000 + 1  # ms resolution: distinct, since ts() steps by 1 ms
        plan.messages.append((f"spBv1.0/{node}", make_payload([(None, 1, DataType.Double, rng.random())],
                                                              seq=sp_seq, timestamp_ms=t_ms)))
        plan.good.add((f"{group}/node1/m", t_ms * 1000))

    def garbage_protobuf() -> bytes:
        while True:
            kind = rng.randrange(3)
            if kind == 0:  # an invalid wire type first
                data = bytes([rng.choice([0x07, 0x0E, 0x0F, 0xFF])]) + rng.randbytes(rng.randrange(0, 200))
            elif kind == 1:  # a real payload cut short
                full = make_payload([(None, 1, DataType.Double, 1.5), ("x" * 40, None, DataType.String, "y")],
                                    seq=1, timestamp_ms=1)
                data = full[:rng.randrange(1, len(full) - 1)]
            else:
                data = rng.randbytes(rng.randrange(1, 300))
            try:
                pb.Payload.FromString(data)
            except DecodeError:
                return data  # only what no protobuf parser would take: its outcome is known

    big_done = 0
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            good_json()
        elif r < 0.55:
            good_sparkplug()
        elif r < 0.60:  # a tag no asset maps: kept (flagged UNMAPPED), stored
            good_json(f"unknown.tag{rng.randrange(50)}")
        else:
            case = rng.randrange(12)
            t = ts()
            if case == 0:
                full = orjson.dumps({"ts": t, "value": 1.0})
                while True:  # cut and patched until it is no JSON at all (a cut may still parse)
                    data = full[:rng.randrange(1, len(full) - 1)] + rng.choice([b"", b"}", b",,"])
                    try:
                        orjson.loads(data)
                    except orjson.JSONDecodeError:
                        break
                bad("malformed_json", data)
            elif case == 1:
                bad("random_bytes", b"\xff" + rng.randbytes(rng.randrange(0, 500)))
            elif case == 2:
                depth = rng.choice([600, 2000, 50_000])
                bad("deep_nesting", b'{"ts": %d, "value": ' % t + b"[" * depth + b"]" * depth + b"}")
            elif case == 3:
                bad("nan", orjson.dumps({"ts": t, "value": rng.choice(["nan", "NaN"])}))
            elif case == 4:
                bad("inf", orjson.dumps({"ts": t, "value": rng.choice(["inf", "-inf", "Infinity"])}))
            elif case == 5:
                value: object = rng.choice(["abc", None, {}, [1, 2]])
                bad("wrong_type_value", orjson.dumps({"ts": t, "value": value}))
            elif case == 6:
                stamp: object = rng.choice(["yesterday", [1], {"a": 1}])
                bad("wrong_type_ts", orjson.dumps({"ts": stamp, "value": 1.0}))
            elif case == 7:
                bad("ts_1970", orjson.dumps({"ts": rng.randrange(0, 10**12), "value": 1.0}))
            elif case == 8:
                bad("ts_next_year", orjson.dumps({"ts": now_us + 365 * 86400 * 1_000_000, "value": 1.0}))
            elif case == 9:
                bad("garbage_protobuf", garbage_protobuf(), topic=f"spBv1.0/{node}")
            elif case == 10:
                bad("missing_field", orjson.dumps({"ts": t}))
            elif case == 11 and big_done < 3:  # 10 MB payloads: garbage and a 10 MB string value
                big_done += 1
                if big_done % 2:
                    bad("10mb", b"\xfe" + rng.randbytes(10 * 1024 * 1024 - 1))
                else:
                    bad("10mb", b'{"ts": %d, "value": "' % t + b"x" * (10 * 1024 * 1024) + b'"}')
            else:
                good_json()
    return plan


@pytest.fixture
def shipped_mosquitto() -> Iterator[ShippedMosquitto]:
    broker = ShippedMosquitto()
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()


async def test_fuzzed_input_into_a_running_appliance(pg_dsn: str, shipped_mosquitto: ShippedMosquitto,
                                                     tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:8]
    prefix, group = f"fz{uid}/j", f"fz{uid}"
    plan = make_plan(prefix, group)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn, flavor="postgres")
    cfg = AppConfig.model_validate({
        "box": {"id": f"fuzz-{uid}"}, "spool": {"dir": str(tmp_path / "spool")},
        "metrics": {"enabled": False}, "mes": {"enabled": False}, "inference": {"enabled": False},
        "historian": {"dsn": pg_dsn}, "broker": {"url": shipped_mosquitto.url},
        "sources": {"mqtt": [
            {"name": "fuzz-json", "topics": [f"{prefix}/#"], "tag_from_topic": "{l2}",
             "ts_format": "epoch_us", "quality_path": None, "client_id": f"fz-json-{uid}"},
            {"name": "fuzz-sp", "topics": [f"spBv1.0/{group}/#"], "codec": "sparkplug",
             "client_id": f"fz-sp-{uid}"},
        ]},
    })
    pipeline = build_pipeline(cfg, with_inference=False, metrics=Metrics())
    task = asyncio.create_task(pipeline.supervisor.run())
    sources = [pipeline.components["fuzz-json"], pipeline.components["fuzz-sp"]]
    await async_wait_until(lambda: all(s.subscribed.is_set() for s in sources), 20, "subscriptions")
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fz-pub-{uid}", protocol=paho.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", shipped_mosquitto.port)
    pub.loop_start()
    t_pub = time.monotonic()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in plan.messages]
    for info in infos:
        await asyncio.to_thread(info.wait_for_publish, 30)
    pub_s = time.monotonic() - t_pub
    n_bad = sum(plan.bad.values())

    def counts() -> tuple[int, int]:
        with psycopg.connect(pg_dsn) as conn:
            s = conn.execute("SELECT count(*) FROM samples").fetchone()
            d = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
        assert s is not None and d is not None
        return int(s[0]), int(d[0])

    try:
        def all_stored() -> bool:
            samples, dead = counts()
            return samples >= len(plan.good) and dead >= n_bad

        # a generous wait: on a loaded 2-core box the stream took over 40 s to be stored
        await async_wait_until(all_stored, 240, f"{len(plan.good)} samples and {n_bad} dead letters",
                               interval=0.5)
        await asyncio.sleep(0.5)
    finally:
        pub.loop_stop()
        pub.disconnect()
        pipeline.supervisor.request_stop()
        await asyncio.wait_for(task, 30)
    restarts = {name: st.restarts for name, st in pipeline.supervisor.states.items() if st.restarts}
    with psycopg.connect(pg_dsn) as conn:
        stored = conn.execute(
            "SELECT tag, (extract(epoch FROM ts) * 1000000)::bigint FROM samples").fetchall()
        reasons = Counter(r[0] for r in conn.execute("SELECT reason FROM dead_letters"))
        empty = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE reason = '' OR reason IS NULL").fetchone()
        no_detail = Counter(r[0] for r in conn.execute(
            "SELECT reason FROM dead_letters WHERE detail IS NULL OR detail = ''"))
    got = Counter((str(t), int(ts)) for t, ts in stored)
    print(f"\n{len(plan.messages)} messages published in {pub_s:.1f} s (seed {SEED}): {len(plan.good)} "
          f"good, stored {len(got)}; {n_bad} bad {dict(plan.bad)}; dead_letters {sum(reasons.values())} by "
          "reason "
          f"{dict(reasons)} (without a detail: {dict(no_detail)}); restarts {restarts}")
    assert restarts == {}
    assert set(got) == plan.good and max(got.values()) == 1  # every good message, once, nothing else
    assert sum(reasons.values()) == n_bad  # every rejection is a dead letter ...
    assert empty is not None and empty[0] == 0  # ... with its reason
    assert no_detail == Counter()  # ... and a detail saying which rule and which value
    b = plan.bad
    assert (reasons["nan"], reasons["inf"], reasons["ts_past"], reasons["ts_future"]) == (
        b["nan"], b["inf"], b["ts_1970"], b["ts_next_year"])
    assert (reasons["missing_field"], reasons["bad_timestamp"]) == (b["missing_field"], b["wrong_type_ts"])
    assert reasons["undecodable"] + reasons["type_coercion"] == (
        b["random_bytes"] + b["malformed_json"] + b["deep_nesting"] + b["garbage_protobuf"] + b["10mb"]
        + b["wrong_type_value"])
