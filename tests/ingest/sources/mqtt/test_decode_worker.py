"""The MQTT source's decode workers (``decode_workers``) on the real broker: the same rows and dead letters
as decoding in the network thread, acknowledgements only after the batch was emitted and acknowledged, a
killed or hung worker (its batches decoded in the thread, the worker restarted, or none left), and no worker
outliving its source or the process that ran it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from edge.core.settings import BrokerSettings
from ingest.settings import MqttSourceSettings
from ingest.sources.mqtt import MqttSource
from ingest.sources.mqtt.decode_worker import DecodedBatch, decode_batch
from tests.conftest import MqttTarget
from tests.ingest.sources.mqtt.test_source import Collector, mqtt_source, publisher, running, until

REPO = Path(__file__).resolve().parents[4]
T0_MS = 1772323200000  # 2026-03-01T00:00:00Z


def broker_at(url: str) -> BrokerSettings:
    return BrokerSettings(url=url)  # type: ignore[call-arg]


def settings(mqtt: MqttTarget, workers: int, **kw: Any) -> MqttSourceSettings:
    return MqttSourceSettings(
        name="dw",
        topics=[mqtt.topic("plant", "#")],
        client_id=kw.pop("client_id", f"fe-dw-{uuid.uuid4().hex[:8]}"),
        topic_pattern=mqtt.prefix + "/plant/{line}/{machine}/{measure}",
        tag_from_topic="{line}.{machine}.{measure}",
        samples_path="samples",
        decode_workers=workers,
        **{"clean_start": True, **kw},
    )


def batched(i: int, n: int = 20) -> bytes:
    samples: list[dict[str, Any]] = []
    for k in range(n):
        ts: Any = f"2026-03-01T00:{i // 60 % 60:02d}:{i % 60:02d}.{k:03d}Z"
        if k % 7 == 3:
            ts = T0_MS + i * 1000 + k  # epoch milliseconds
        elif k % 7 == 5:
            ts = f"2026-03-01T02:{i // 60 % 60:02d}:{i % 60:02d}.{k:03d}+02:00"  # an offset
        samples.append({"ts": ts, "value": i + k * 0.25, "quality": k % 3})
    return orjson.dumps({"samples": samples})


def mixed_messages(prefix: str, n: int) -> list[tuple[str, bytes]]:
    """Good batched payloads with every kind of bad one in between."""
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        topic = f"{prefix}/plant/l1/m{i % 4}/vib"
        if i % 10 == 1:
            out.append((topic, b"\x00not json %d" % i))  # undecodable
        elif i % 10 == 2:
            s = orjson.loads(batched(i, 5))
            s["samples"][1]["value"] = "abc"  # type_coercion for one sample, the rest kept
            s["samples"][2]["value"] = " 7.5"  # a numeric string: kept, flagged COERCED
            s["samples"][3]["ts"] = "yesterday"  # bad_timestamp
            del s["samples"][4]["value"]  # missing_field
            out.append((topic, orjson.dumps(s)))
        elif i % 10 == 3:
            out.append((topic, orjson.dumps({"nothing": i})))  # bad_shape
        elif i % 10 == 4:
            out.append((f"{prefix}/plant/short/{i}", batched(i, 3)))  # unmapped_topic
        else:
            out.append((topic, batched(i)))
    return out


def rows(c: Collector) -> list[tuple[Any, ...]]:
    t = c.samples()
    if t.num_rows == 0:
        return []
    cols = [t.column("tag").cast(pa.string()).to_pylist(), t.column("ts").cast(pa.int64()).to_pylist(),
            t.column("value").to_pylist(), t.column("quality").to_pylist(), t.column("flags").to_pylist()]
    return sorted(zip(*cols, strict=True))


def dead(c: Collector) -> list[tuple[Any, ...]]:
    batches = [e.batch for e in c.of("dead_letters")]
    if not batches:
        return []
    t = pa.Table.from_batches(batches)
    cols = [t.column("reason").cast(pa.string()).to_pylist(), t.column("tag").to_pylist(),
            t.column("detail").to_pylist(), t.column("payload").to_pylist()]
    return sorted(zip(*cols, strict=True), key=repr)


def events(c: Collector) -> list[str]:
    batches = [e.batch for e in c.of("events")]
    return pa.Table.from_batches(batches).column("message").to_pylist() if batches else []


def publish_all(mqtt: MqttTarget, messages: list[tuple[str, bytes]]) -> None:
    pub = publisher(mqtt.url)
    info = None
    for topic, payload in messages:
        info = pub.publish(topic, payload, qos=1)
    assert info is not None
    info.wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def gone(pid: int, timeout: float = 10.0) -> None:
    await until(lambda: not alive(pid), timeout, f"process {pid} to end")


async def ready(source: MqttSource, n: int = 1) -> None:
    await until(lambda: source.workers_ready >= n, 30, "the decode worker")


def test_worker_decode_equals_thread_decode_in_process() -> None:
    """``decode_batch`` (what the worker runs) against the source's own chunked decoding, without a broker."""
    from ingest.codecs import Decoded
    from ingest.codecs.json.codec import JsonCodec

    msgs = mixed_messages("p", 60)
    s = MqttSourceSettings(name="x", topics=["p/#"], topic_pattern="p/plant/{line}/{machine}/{measure}",
                           tag_from_topic="{line}.{machine}.{measure}", samples_path="samples")
    whole: DecodedBatch = decode_batch(JsonCodec.from_settings(s), "x", [t.encode() for t, _ in msgs],
                                       [p for _, p in msgs], 5, 7)
    d = Decoded("x")
    codec = JsonCodec.from_settings(s)
    for i in range(0, 60, 13):  # the thread decodes a chunk at a time
        codec.decode(msgs[i:i + 13], 5, d)
    chunked = d.to_samples(7)
    # the same rows; their order within a batch depends on the chunking (in either path, a message with bad
    # elements adds its good samples at once, the fast path at the end of a decode call)
    assert sorted(whole.samples.to_pylist(), key=repr) == sorted(chunked.to_pylist(), key=repr)
    assert whole.samples.num_rows > 500
    assert whole.dead is not None and whole.dead_counts == dict(d.dead.counters)
    assert whole.dead.to_pylist() == d.dead.take_batch().to_pylist()
    assert set(whole.dead_counts) == {"undecodable", "type_coercion", "bad_timestamp", "missing_field",
                                      "bad_shape", "unmapped_topic"}


async def test_same_rows_and_dead_letters_as_decoding_in_the_thread(mqtt: MqttTarget) -> None:
    """Two sources on the same stream, one with a worker and one without: the same rows, dead letters, ids."""
    thread_c, worker_c = Collector(), Collector()
    broker = broker_at(mqtt.url)
    in_thread = mqtt_source(settings(mqtt, 0), broker, thread_c, batch_ms=20)
    with_worker = mqtt_source(settings(mqtt, 1), broker, worker_c, batch_ms=20)
    messages = mixed_messages(mqtt.prefix, 400)
    async with running(in_thread), running(with_worker):
        await ready(with_worker)
        pid = with_worker.worker_pids[0]
        assert in_thread.worker_pids == []
        await asyncio.to_thread(publish_all, mqtt, messages)
        await until(lambda: in_thread.counters["messages"] == len(messages)
                    and with_worker.counters["messages"] == len(messages), 30, "both sources")
        await until(lambda: in_thread.counters["acked"] == len(messages)
                    and with_worker.counters["acked"] == len(messages), 10, "the acks")
    # every batch went to the worker, or was shared with the network thread while the worker was busy
    # (share_decoding: how many depends on the box's load), never decoded here for want of a worker
    c = with_worker.counters
    assert c["batches_decoded_by_workers"] > 0
    assert (c["batches_decoded_by_workers"] + c["batches_decoded_in_thread_workers_busy"]
            >= len(worker_c.of("samples")) > 0)
    assert with_worker.counters["batches_decoded_in_thread"] == 0
    assert in_thread.counters["batches_decoded_by_workers"] == 0
    expected_rows = rows(thread_c)
    assert len(expected_rows) == 240 * 20 + 40 * 2  # good messages, and the good samples of the bad ones
    assert rows(worker_c) == expected_rows
    assert dead(worker_c) == dead(thread_c)
    reasons = {r for r, *_ in dead(worker_c)}
    assert reasons == {"undecodable", "type_coercion", "bad_timestamp", "missing_field", "bad_shape",
                       "unmapped_topic"}
    for reason in reasons:
        key = f"dead_letter:{reason}"
        assert with_worker.counters[key] == in_thread.counters[key] > 0
    assert with_worker.counters["samples"] == in_thread.counters["samples"] == len(expected_rows)
    # order within a topic: each machine's messages arrive as published. (Not checked: the messages with bad
    # elements (i % 10 == 2), whose good samples the codec adds ahead of the fast path's within a decode call,
    # in either path.)
    for c in (worker_c, thread_c):
        t = c.samples()
        tags = t.column("tag").cast(pa.string()).to_pylist()
        ts = t.column("ts").cast(pa.int64()).to_pylist()
        values = t.column("value").to_pylist()
        per_tag: dict[str, list[int]] = {}
        for tag, us, v in zip(tags, ts, values, strict=True):
            if us % 1_000_000 == 0 and int(v) % 10 != 2:  # sample k = 0 of message i: value i
                per_tag.setdefault(tag, []).append(int(v))
        assert len(per_tag) == 4
        for seq in per_tag.values():
            assert seq == sorted(seq) and len(seq) == 60
    assert not alive(pid)  # stopped with its source


async def test_acknowledged_only_after_the_batch_is_emitted_and_acknowledged(mqtt: MqttTarget) -> None:
    client_id = f"fe-dw-{uuid.uuid4().hex[:10]}"
    broker = broker_at(mqtt.url)

    def persistent() -> MqttSourceSettings:
        return settings(mqtt, 1, client_id=client_id, clean_start=False, session_expiry_s=300, qos=1)

    first = Collector(auto_ack=False)
    src = mqtt_source(persistent(), broker, first, batch_ms=20, ack_wait_s=0.1)
    messages = [(mqtt.topic("plant", "l1", "m1", "vib"), batched(i)) for i in range(30)]
    async with running(src):
        await ready(src)
        await asyncio.to_thread(publish_all, mqtt, messages)
        await until(lambda: first.n_samples() == 600, what="the first delivery")
        await asyncio.sleep(0.3)
        assert src.counters["acked"] == 0  # emitted, not acknowledged downstream: no PUBACK
        assert src.counters["batches_decoded_by_workers"] > 0
        half = first.of("samples")[: len(first.of("samples")) // 2]
        for env in half + first.of("events"):
            env.acknowledge()
        acked_msgs = sum(env.num_rows for env in half) // 20
        await until(lambda: src.counters["acked"] == acked_msgs, 5, "the acks of the acknowledged half")
    second = Collector()
    src2 = mqtt_source(persistent(), broker, second, batch_ms=20)
    async with running(src2):
        await until(lambda: second.n_samples() >= 600 - acked_msgs * 20, 15, "the redelivery")
        await asyncio.sleep(0.3)
    assert second.n_samples() == 600 - acked_msgs * 20  # exactly what was not acknowledged came again
    assert src2.counters["acked"] == 30 - acked_msgs


async def test_a_killed_worker_is_restarted_and_nothing_is_lost(mqtt: MqttTarget) -> None:
    c = Collector()
    src = mqtt_source(settings(mqtt, 1, qos=1), broker_at(mqtt.url), c, batch_ms=20,
                     decode_worker_restarts=3)
    first = [(mqtt.topic("plant", "l1", "m1", "vib"), batched(i)) for i in range(50)]
    second = [(mqtt.topic("plant", "l1", "m2", "vib"), batched(i)) for i in range(50)]
    async with running(src):
        await ready(src)
        old = src.worker_pids[0]
        await asyncio.to_thread(publish_all, mqtt, first)
        await until(lambda: c.n_samples() == 1000, what="the first half")
        os.kill(old, signal.SIGKILL)
        await gone(old)
        await asyncio.to_thread(publish_all, mqtt, second)
        await until(lambda: c.n_samples() == 2000, 20, "the second half")
        await until(lambda: src.workers_ready == 1, 30, "the new worker")
        new = src.worker_pids[0]
        assert new != old and alive(new)
        before = src.counters["batches_decoded_by_workers"]
        await asyncio.to_thread(publish_all, mqtt, [(t, batched(100 + i)) for i, (t, _) in enumerate(first)])
        await until(lambda: c.n_samples() == 3000, 20, "the third part")
        assert src.counters["batches_decoded_by_workers"] > before  # the new worker decodes
    assert src.counters["decode_worker_failures"] == 1 and src.counters["decode_worker_restarts"] == 1
    assert src.counters["acked"] == 150
    assert any("decode worker" in m and "restarted" in m for m in events(c))
    assert len(set(rows(c))) == 3000
    assert not alive(new)


async def test_a_hung_worker_is_killed_and_its_batches_are_decoded_in_the_thread(mqtt: MqttTarget) -> None:
    c = Collector()
    src = mqtt_source(settings(mqtt, 1, qos=1), broker_at(mqtt.url), c, batch_ms=20,
                     decode_timeout_s=1.0, decode_worker_restarts=0)
    msgs = [(mqtt.topic("plant", "l1", "m1", "vib"), batched(i)) for i in range(40)]
    async with running(src):
        await ready(src)
        pid = src.worker_pids[0]
        os.kill(pid, signal.SIGSTOP)  # hangs: the batches sent to it get no result
        try:
            await asyncio.to_thread(publish_all, mqtt, msgs)
            await until(lambda: c.n_samples() == 800, 20, "every sample")
        finally:
            if alive(pid):
                os.kill(pid, signal.SIGCONT)
        assert src.worker_pids == []  # no restarts allowed: the thread decodes from now on
        await asyncio.to_thread(publish_all, mqtt, [(t, batched(100 + i)) for i, (t, _) in enumerate(msgs)])
        await until(lambda: c.n_samples() == 1600, 20, "more samples, decoded in the thread")
    assert not alive(pid)
    assert src.counters["batches_decoded_after_worker_failure"] >= 1
    assert src.counters["batches_decoded_by_workers"] == 0
    assert src.counters["decode_worker_failures"] == 1 and src.counters["decode_worker_restarts"] == 0
    assert src.counters["acked"] == 80
    msgs_ev = [m for m in events(c) if "decode worker" in m]
    assert len(msgs_ev) == 1 and "no result in 1 s" in msgs_ev[0] and "network thread" in msgs_ev[0]
    assert len(set(rows(c))) == 1600


async def test_the_thread_decodes_while_the_worker_is_busy_and_the_order_is_kept(mqtt: MqttTarget) -> None:
    """A stopped (busy) worker keeps the batches sent to it; the network thread decodes the later ones itself
    (``share_decoding``), and everything is handed over in the order it was cut once the worker answers."""
    c = Collector()
    src = mqtt_source(settings(mqtt, 1, qos=1), broker_at(mqtt.url), c, batch_ms=20)
    topic = mqtt.topic("plant", "l1", "m1", "vib")
    async with running(src):
        await ready(src)
        pid = src.worker_pids[0]
        os.kill(pid, signal.SIGSTOP)
        try:
            for part in range(6):  # several batches: 20 ms each, 10 messages apiece
                part_msgs = [(topic, batched(part * 10 + i)) for i in range(10)]
                await asyncio.to_thread(publish_all, mqtt, part_msgs)
                await asyncio.sleep(0.08)
            await until(lambda: src.counters["batches_decoded_in_thread_workers_busy"] >= 2, 10,
                        "the thread to decode for the busy worker")
            assert c.n_samples() == 0  # the first batches wait at the worker; the later ones wait for them
        finally:
            os.kill(pid, signal.SIGCONT)
        await until(lambda: c.n_samples() == 1200, 20, "every sample")
        await until(lambda: src.counters["acked"] == 60, 10, "the acks")
    assert src.counters["batches_decoded_by_workers"] >= 1
    assert src.counters["decode_worker_failures"] == 0
    t = c.samples()
    values, stamps = t.column("value").to_pylist(), t.column("ts").cast(pa.int64()).to_pylist()
    firsts = [int(v) for v, us in zip(values, stamps, strict=True) if us % 1_000_000 == 0]  # k = 0: value i
    assert firsts == list(range(60))  # emitted in the order published, whoever decoded
    assert len(set(rows(c))) == 1200


async def test_the_worker_dies_with_the_process_that_ran_the_source(mqtt: MqttTarget, tmp_path: Path) -> None:
    script = tmp_path / "run_source.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(REPO)!r})
        from edge.app.plugins import make_codec
        from edge.core.settings import BrokerSettings
        from ingest.sources.mqtt import MqttSource
        from ingest.settings import MqttSourceSettings

        async def main():
            async def emit(env):
                env.acknowledge()
            s = MqttSourceSettings(name="orphan", topics=[{mqtt.topic("o", "#")!r}], clean_start=True,
                                   decode_workers=1)
            src = MqttSource(s, BrokerSettings(url={mqtt.url!r}), emit, codec=make_codec(s))
            task = asyncio.create_task(src.run())
            while src.workers_ready < 1:
                await asyncio.sleep(0.05)
            print(src.worker_pids[0], flush=True)
            await task

        asyncio.run(main())
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        pid = int(line)
        assert alive(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await gone(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_decode_workers_setting() -> None:
    from ingest.sources.mqtt.decode_worker import default_decode_workers

    base: dict[str, Any] = {"name": "s", "topics": ["t"]}
    assert default_decode_workers(MqttSourceSettings(**base, decode_workers=0)) == 0
    assert default_decode_workers(MqttSourceSettings(**base, decode_workers=2)) == 2
    assert default_decode_workers(MqttSourceSettings(**base, codec="sparkplug", decode_workers=2)) == 0
    assert default_decode_workers(MqttSourceSettings(**base)) == (1 if (os.cpu_count() or 1) >= 2 else 0)
    with pytest.raises(ValueError):
        MqttSourceSettings(**base, decode_workers=-1)

