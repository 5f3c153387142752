"""``edge replay FILE``: publish a file's rows into a running appliance over MQTT, with their own timestamps.

Each row becomes one JSON sample per signal (``{"ts": ISO, "value": v}`` on ``--topic-template`` with
``{signal}``; the JSON codec's defaults ``value_path = "value"``, ``ts_path = "ts"``), or with ``--batched``
one message per row ``{"samples": [{"tag", "ts", "value"}, ...]}`` (a source with ``samples_path =
"samples"``, ``tag_path = "tag"``). QoS 1. Pacing: the rows' own time divided by ``--speedup``, or
``--as-fast-as-possible``. The file is read like ``edge models evaluate`` reads it (labels not needed).
Exit 0 when every message was acknowledged, 1 when not, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

EXIT_FAIL = 1
EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="publish a CSV/Parquet file's rows to the broker with their timestamps")
    p.add_argument("file", type=Path)
    p.add_argument("--broker", default=None, help="broker URL (default: [broker] url of the config)")
    p.add_argument("--dir", type=Path, default=None, help="config folder")
    p.add_argument("--box", default=None, help="box name for the config layers")
    p.add_argument("--topic-template", default="replay/{asset}/{signal}",
                   help="topic per message: {asset}, {signal} (per-signal messages), {file}")
    p.add_argument("--asset", default="replay", help="value of {asset} in the topic template")
    p.add_argument("--batched", action="store_true", help='one {"samples": [...]} message per row')
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speedup", type=float, default=1.0,
                      help="replay this many times faster than real time")
    pace.add_argument("--as-fast-as-possible", action="store_true")
    p.add_argument("--time-column", default=None)
    p.add_argument("--sep", default=None)
    p.add_argument("--signals", default="",
                   help="comma-separated signal columns (default: every numeric one)")
    p.add_argument("--ignore-columns", default="")
    per = p.add_mutually_exclusive_group()
    per.add_argument("--rows-per-second", type=float, default=None)
    per.add_argument("--period-s", type=float, default=None)
    p.add_argument("--limit", type=int, default=None, help="send at most this many rows")
    p.add_argument("--timeout-s", type=float, default=30.0, help="wait this long for the acknowledgements")
    p.set_defaults(func=_replay)


def _iso(ts_us: int) -> str:
    s, us = divmod(int(ts_us), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{us:06d}Z"


def _broker(args: argparse.Namespace) -> Any:
    from edge.core.settings import BrokerSettings

    try:
        from edge.app.config import ConfigError, default_config_dir, load_config

        folder = args.dir if args.dir is not None else default_config_dir()
        broker = load_config(folder, args.box).config.broker
    except (ConfigError, OSError):
        if args.dir is not None or args.box is not None:
            raise
        broker = BrokerSettings.model_validate({})
    return broker


def messages(ts_us: Any, signals: dict[str, Any], template: str, asset: str, batched: bool,
             file: str = "") -> list[tuple[int, str, bytes]]:
    """(row index, topic, payload) in row order; NaN values are left out (no sample)."""
    import math

    names = list(signals)
    cols = [signals[n].tolist() for n in names]
    out: list[tuple[int, str, bytes]] = []
    topics = {n: template.format(asset=asset, signal=n, file=file) for n in names}
    row_topic = template.replace("/{signal}", "").format(asset=asset, signal="", file=file)
    for i, t in enumerate(ts_us.tolist()):
        iso = _iso(t)
        vals = [(n, c[i]) for n, c in zip(names, cols, strict=True) if not math.isnan(c[i])]
        if batched:
            body = {"samples": [{"tag": n, "ts": iso, "value": v} for n, v in vals]}
            out.append((i, row_topic, json.dumps(body).encode()))
        else:
            out.extend((i, topics[n], json.dumps({"ts": iso, "value": v}).encode()) for n, v in vals)
    return out


def _replay(args: argparse.Namespace) -> int:
    from edge.core.mqtt import connect, make_client
    from inference.evaluation.table import TableError, TableOptions, read_labelled

    period = args.period_s if args.period_s is not None else (
        1.0 / args.rows_per_second if args.rows_per_second else None)
    if args.speedup <= 0:
        print("error: --speedup must be positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        broker = _broker(args)
        table = read_labelled(args.file, TableOptions(
            time_column=args.time_column, sep=args.sep, period_s=period, require_labels=False,
            signals=[c for c in args.signals.split(",") if c],
            ignore_columns=[c for c in args.ignore_columns.split(",") if c]))
        if "{signal}" not in args.topic_template and not args.batched:
            raise ValueError("--topic-template needs {signal} unless --batched")
        ts = table.ts_us[: args.limit] if args.limit else table.ts_us
        sig = {k: v[: len(ts)] for k, v in table.signals.items()}
        msgs = messages(ts, sig, args.topic_template, args.asset, args.batched, args.file.stem)
    except (TableError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client, address, props = make_client(broker, url=args.broker, client_id=None, clean_start=True)
    connected = threading.Event()
    acked: set[int] = set()
    lock = threading.Lock()
    client.on_connect = lambda c, u, f, rc, p=None: connected.set()

    def on_publish(c: Any, u: Any, mid: int, rc: Any = None, p: Any = None) -> None:
        with lock:
            acked.add(mid)

    client.on_publish = on_publish
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    connect(client, address, props)
    client.loop_start()
    try:
        if not connected.wait(10):
            print(f"error: no connection to the broker at {address.host}:{address.port}", file=sys.stderr)
            return EXIT_FAIL
        t0 = time.monotonic()
        first = int(ts[0]) if len(ts) else 0
        mids: list[int] = []
        for i, topic, payload in msgs:
            if not args.as_fast_as_possible:
                due = (int(ts[i]) - first) / 1e6 / args.speedup
                lag = due - (time.monotonic() - t0)
                if lag > 0:
                    time.sleep(lag)
            mids.append(client.publish(topic, payload, qos=1).mid)
        deadline = time.monotonic() + args.timeout_s
        while time.monotonic() < deadline:
            with lock:
                if len(acked.intersection(mids)) == len(mids):
                    break
            time.sleep(0.01)
        with lock:
            n_ack = len(acked.intersection(mids))
        took = time.monotonic() - t0
    finally:
        client.loop_stop()
        client.disconnect()
    span = (int(ts[-1]) - first) / 1e6 if len(ts) else 0.0
    print(f"replayed {len(ts)} rows x {len(sig)} signals of {args.file} as {len(mids)} messages "
          f"({'batched' if args.batched else 'one sample each'}) to {address.host}:{address.port}: "
          f"{n_ack} acknowledged (QoS 1), {span:.1f} s of data in {took:.2f} s")
    return 0 if n_ack == len(mids) else EXIT_FAIL
