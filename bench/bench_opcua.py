"""OPC-UA ingest benchmark: the OpcUaSource into Arrow batches vs a bare asyncua client that only counts.

One run starts an OPC-UA server in its own process, then measures, one after the other against that same
server, each client in a process of its own. ``--server sim`` (default): the plant simulator (``edge
simulate``, asyncua server) with TAGS = lines x machines x 4 at RATE Hz; it costs 50-170 µs of CPU per
value, so on a small machine it cannot deliver 50k values/s. ``--server node``: ``bench/opcua_node_server``
(node-opcua, Node.js >= 18; ``npm ci`` is run there if its node_modules is missing) serving ``--tags`` Double
tags (default lines x machines x 4), each changing once a tick (RATE ticks a second) and delivered on change;
its ticks per second over each client's window give the values it produced, reported beside what the client
received. The clients:

* ``bare``: asyncua's own subscription API (iterator mode, the cheaper of its two), counting notifications;
* ``source``: :class:`ingest.sources.opcua.source.OpcUaSource` building SAMPLES batches (emit counts rows, no
sink);
* interleaved over ``--rounds`` (bare, source, source, bare, ...), medians reported, since the machine is
  shared and its load drifts.

Each client runs in a process of its own; CPU is that process's user+system time. Lag is recv_ts - ts of
the source's rows, median per second, compared between the first and the last third of the phase.

    .venv/bin/python bench/bench_opcua.py --lines 25 --machines 50 --duration 20
    .venv/bin/python bench/bench_opcua.py --server node --tags 5000 --duration 20

The server process's CPU (cores, and CPU s per 10k values delivered) is reported per phase too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NS = "urn:factory-edge:sim"
NODE_NS = "urn:factory-edge:bench-node"
NODE_PREFIX = "tag."
NODE_SERVER_DIR = REPO / "bench" / "opcua_node_server"


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_stats(log_path: str) -> dict[str, int] | None:
    """The last cumulative ``stats`` line of the node server's log (None for the asyncua simulator)."""
    if not log_path:
        return None
    try:
        with open(log_path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(log_path) - 4096))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return None
    lines = [x for x in tail.splitlines() if x.startswith("stats ")]
    if not lines:
        return None
    return {k: int(v) for k, v in (f.split("=", 1) for f in lines[-1].split()[1:])}


def tick_rate(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, Any]:
    """Server ticks per second (every tag changes once a tick) and ticks skipped between two stats lines."""
    if before is None or after is None or after["t_ms"] <= before["t_ms"]:
        return {}
    span_s = (after["t_ms"] - before["t_ms"]) / 1000
    return {"server_ticks_per_s": (after["ticks"] - before["ticks"]) / span_s,
            "server_ticks_skipped": after["skipped"] - before["skipped"],
            "server_ticks_late": after["late"] - before["late"]}


# -- clients (run in a child process) -------------------------------------------------------------
async def client_bare(endpoint: str, ns: str, tags: list[str], warmup: float, duration: float,
                      chunk: int, publish_requests: int, server_pid: int, server_log: str) -> dict[str, Any]:
    from asyncua import ua
    from asyncua.client.client import Client

    client = Client(endpoint, timeout=30, watchdog_intervall=30)  # as the source with request_timeout_s=30
    await client.connect()
    idx = await client.get_namespace_index(ns)
    count = 0

    async def consume(sub: Any) -> None:
        nonlocal count
        async for _ev in sub:
            count += 1

    consumers = []
    n_subs = -(-len(tags) // chunk)
    for start in range(0, len(tags), chunk):
        sub = await client.create_subscription(100, None, queue_maxsize=10_000_000)
        nodes: Any = [client.get_node(ua.NodeId(t, idx)) for t in tags[start:start + chunk]]  # type: ignore[arg-type]
        await sub.subscribe_data_change(nodes, sampling_interval=100.0, queuesize=10)  # type: ignore[call-overload]
        consumers.append(asyncio.create_task(consume(sub)))
    session = client.uaclient.session
    in_flight = publish_requests or min(16, n_subs + 1)
    loops = [asyncio.create_task(session._publish_loop()) for _ in range(in_flight - 1)]
    await asyncio.sleep(warmup)
    c0, t0, n0, s0 = time.process_time(), time.monotonic(), count, proc_cpu_s(server_pid)
    st0 = server_stats(server_log)
    await asyncio.sleep(duration)
    c1, t1, n1, s1 = time.process_time(), time.monotonic(), count, proc_cpu_s(server_pid)
    st1 = server_stats(server_log)
    for c in consumers + loops:
        c.cancel()
    await client.disconnect()
    return {"values": n1 - n0, "wall_s": t1 - t0, "cpu_s": c1 - c0, "server_cpu_s": s1 - s0,
            **tick_rate(st0, st1)}


async def client_source(endpoint: str, ns: str, tags: list[str], warmup: float, duration: float, chunk: int,
                        publish_requests: int, server_pid: int, server_log: str) -> dict[str, Any]:
    from edge.core.envelope import Envelope
    from ingest.settings import OpcUaSourceSettings
    from ingest.sources.opcua.source import OpcUaSource

    rows = 0
    batches = 0
    lags: list[tuple[float, float]] = []  # (monotonic, median lag ms of the batch)

    async def emit(env: Envelope) -> None:
        nonlocal rows, batches
        rows += env.num_rows
        batches += 1
        if batches % 4 == 0:
            b = env.batch
            ts = b.column("ts").cast("int64").to_numpy()
            recv = b.column("recv_ts").cast("int64").to_numpy()
            lags.append((time.monotonic(), float(statistics.median((recv - ts).tolist())) / 1000))

    settings = OpcUaSourceSettings.model_validate({
        "name": "bench", "endpoint": endpoint, "max_nodes_per_subscription": chunk,
        "publish_requests": publish_requests, "request_timeout_s": 30,
        "nodes": [{"tag": t, "node": f"nsu={ns};s={t}"} for t in tags]})
    source = OpcUaSource(settings, emit)
    task = asyncio.create_task(source.run())
    await asyncio.wait_for(source.connected.wait(), 60)
    await asyncio.sleep(warmup)
    c0, t0, n0, s0 = time.process_time(), time.monotonic(), rows, proc_cpu_s(server_pid)
    st0 = server_stats(server_log)
    await asyncio.sleep(duration)
    c1, t1, n1, s1 = time.process_time(), time.monotonic(), rows, proc_cpu_s(server_pid)
    st1 = server_stats(server_log)
    await source.stop()
    await task
    window = [lag for at, lag in lags if t0 <= at <= t1]
    third = max(1, len(window) // 3)
    return {"values": n1 - n0, "wall_s": t1 - t0, "cpu_s": c1 - c0, "server_cpu_s": s1 - s0,
            **tick_rate(st0, st1), "batches": batches,
            "lag_ms_first_third": statistics.median(window[:third]) if window else None,
            "lag_ms_last_third": statistics.median(window[-third:]) if window else None}


def server_tags(args: argparse.Namespace) -> tuple[str, list[str]]:
    """Namespace URI and node ids (= tag names) of the server under test."""
    if args.server == "node":
        return NODE_NS, [f"{NODE_PREFIX}{i}" for i in range(n_tags(args))]
    from edge.simulator.plant import plant_tags

    return NS, [t.name for t in plant_tags(args.lines, args.machines)]


def n_tags(args: argparse.Namespace) -> int:
    return int(args.tags) if args.server == "node" and args.tags else int(args.lines * args.machines * 4)


def child(args: argparse.Namespace) -> None:
    ns, tags = server_tags(args)
    if args.client == "bare":
        res = asyncio.run(client_bare(args.endpoint, ns, tags, args.warmup, args.duration, args.chunk,
                                      args.bare_publish_requests, args.server_pid,
                                      args.server_log))
    else:
        res = asyncio.run(client_source(args.endpoint, ns, tags, args.warmup, args.duration, args.chunk,
                                        args.publish_requests, args.server_pid,
                                        args.server_log))
    print("RESULT " + json.dumps(res), flush=True)


# -- driver --------------------------------------------------------------------------------------
def phase(kind: str, args: argparse.Namespace, endpoint: str, server_pid: int,
          server_log: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--endpoint", endpoint, "--server", args.server,
           "--tags", str(args.tags), "--lines", str(args.lines),
           "--machines", str(args.machines), "--duration", str(args.duration), "--warmup", str(args.warmup),
           "--chunk", str(args.chunk), "--publish-requests", str(args.publish_requests),
           "--bare-publish-requests", str(args.bare_publish_requests), "--server-pid", str(server_pid),
           "--server-log", server_log]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{kind} client failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    res: dict[str, Any] = json.loads(line[7:])
    res["values_per_s"] = res["values"] / res["wall_s"]
    res["cpu_cores"] = res["cpu_s"] / res["wall_s"]
    res["cpu_s_per_10k_values"] = res["cpu_s"] / max(res["values"], 1) * 10_000
    res["server_cpu_cores"] = res["server_cpu_s"] / res["wall_s"]  # over the client's measured window
    res["server_cpu_s_per_10k_values"] = res["server_cpu_s"] / max(res["values"], 1) * 10_000
    if res.get("server_ticks_per_s"):  # node server: what it produced (every tag changes once a tick)
        res["server_values_per_s"] = res["server_ticks_per_s"] * n_tags(args)
        res["received_to_produced"] = res["values_per_s"] / res["server_values_per_s"]
    res["loadavg_1m_after"] = os.getloadavg()[0]
    return res


def decode_cost(n: int = 1000, reps: int = 50) -> None:
    """CPU per value of asyncua's PublishResponse decoding vs the source's own work on the decoded items."""
    from datetime import UTC, datetime

    from asyncua import ua
    from asyncua.common.utils import Buffer
    from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

    from edge.core.envelope import Envelope
    from ingest.settings import OpcUaSourceSettings
    from ingest.sources.opcua.source import OpcUaSource

    now: Any = datetime.now(UTC)
    items = [ua.MonitoredItemNotification(ClientHandle=i + 1, Value=ua.DataValue(  # type: ignore[arg-type]
        ua.Variant(float(i), ua.VariantType.Double), SourceTimestamp=now, ServerTimestamp=now))
        for i in range(n)]
    resp = ua.PublishResponse()
    resp.Parameters.SubscriptionId = 1  # type: ignore[assignment]
    resp.Parameters.NotificationMessage = ua.NotificationMessage(  # type: ignore[call-arg]
        SequenceNumber=1, PublishTime=now, NotificationData=[ua.DataChangeNotification(MonitoredItems=items)])
    data = struct_to_binary(resp)
    t = time.process_time()
    for _ in range(reps):
        decoded: Any = struct_from_binary(ua.PublishResponse, Buffer(data))
    dec = (time.process_time() - t) / reps / n * 1e6

    from ingest.sources.opcua.fastdecode import decode_publish_response

    t = time.process_time()
    for _ in range(reps):
        fast: Any = decode_publish_response(Buffer(data))
    fast_dec = (time.process_time() - t) / reps / n * 1e6

    async def emit(_: Envelope) -> None:
        return None

    cfg = OpcUaSourceSettings.model_validate({"name": "x", "endpoint": "opc.tcp://x:1", "nodes": [
        {"tag": f"t{i}", "node": f"nsu=urn:x;s=t{i}"} for i in range(n)]})
    src = OpcUaSource(cfg, emit)
    handles = {i + 1: i for i in range(n)}
    mi = decoded.Parameters.NotificationMessage.NotificationData[0].MonitoredItems
    t = time.process_time()
    for _ in range(reps):
        src._take(mi, handles)
    take = (time.process_time() - t) / reps / n * 1e6
    rows = len(src._cols.ts)
    t = time.process_time()
    for _ in range(10):
        src._samples_batch(src._cols)
    build = (time.process_time() - t) / 10 / rows * 1e6
    cols = fast.Parameters.NotificationMessage.NotificationData[0]
    t = time.process_time()
    for _ in range(reps):
        src._take_columns(cols, handles)
    take_cols = (time.process_time() - t) / reps / n * 1e6
    print(json.dumps({"values_per_response": n, "asyncua_decode_us_per_value": round(dec, 3),
                      "source_take_us_per_value": round(take, 3),
                      "fast_decode_us_per_value": round(fast_dec, 3),
                      "source_take_columns_us_per_value": round(take_cols, 3),
                      "arrow_batch_us_per_value": round(build, 3)}))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def node_server_ready() -> None:
    """Install the node-opcua server's modules (``npm ci``) if they are missing; exit with a hint if npm
    is not there."""
    if (NODE_SERVER_DIR / "node_modules" / "node-opcua").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemExit("--server node needs Node.js (>= 18) and npm; then run: "
                         f"cd {NODE_SERVER_DIR} && npm ci")
    print(f"installing the node-opcua server's modules: npm ci in {NODE_SERVER_DIR}", file=sys.stderr)
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_SERVER_DIR, check=False)
    if done.returncode != 0:
        raise SystemExit(f"npm ci failed (exit {done.returncode}); run it by hand: "
                         f"cd {NODE_SERVER_DIR} && npm ci")


def start_server(args: argparse.Namespace, log: Any) -> subprocess.Popen[bytes]:
    """Start the server under test; its stdout and stderr go to ``log`` (a file, so nothing blocks on a full
    pipe); returns once it prints its "serving" line."""
    if args.server == "node":
        node_server_ready()
        # a larger young generation: fewer scavenges of the short-lived per-value objects
        cmd = ["node", "--max-semi-space-size=64", str(NODE_SERVER_DIR / "server.js"),
               "--tags", str(n_tags(args)), "--port", str(args.port), "--rate-hz", str(args.rate_hz),
               "--ns", NODE_NS, "--prefix", NODE_PREFIX]
    else:
        cmd = [sys.executable, "-m", "edge.app.cli", "--log-level", "warning", "simulate",
               "--lines", str(args.lines), "--machines", str(args.machines), "--rate-hz", str(args.rate_hz),
               "--opcua-port", str(args.port), "--faults", "none", "--layout", "plain"]
    server = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = Path(log.name).read_text(errors="replace")
        if "serving" in text:
            return server
        if server.poll() is not None:
            raise SystemExit(f"{args.server} server exited with {server.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    stop_server(server)
    text = Path(log.name).read_text(errors="replace")
    raise SystemExit(f"{args.server} server did not start within 120 s:\n{text[-3000:]}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=["sim", "node"], default="sim",
                    help="sim: edge simulate (asyncua server); node: bench/opcua_node_server (node-opcua)")
    ap.add_argument("--tags", type=int, default=0,
                    help="--server node: number of tags (default lines x machines x 4)")
    ap.add_argument("--lines", type=int, default=25)
    ap.add_argument("--machines", type=int, default=50)
    ap.add_argument("--rate-hz", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--chunk", type=int, default=1000, help="monitored items per subscription (both clients)")
    ap.add_argument("--publish-requests", type=int, default=0,
                    help="source: publish requests in flight (0: subscriptions + 1, the source's default)")
    ap.add_argument("--bare-publish-requests", type=int, default=0,
                    help="bare client: 0 gives it the source's extra publish loops; 1 = asyncua alone")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved bare/source rounds (medians reported)")
    ap.add_argument("--port", type=int, default=48620)
    ap.add_argument("--decode-cost", action="store_true",
                    help="only measure CPU per value of decoding vs the source's own work (no server)")
    ap.add_argument("--child", choices=["bare", "source"], default=None)
    ap.add_argument("--endpoint", default=None)
    ap.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--server-log", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.decode_cost:
        decode_cost()
        return
    if args.child:
        args.client = args.child
        child(args)
        return
    tags = n_tags(args)
    endpoint = f"opc.tcp://127.0.0.1:{args.port}"
    with tempfile.NamedTemporaryFile("wb", prefix=f"bench_opcua_{args.server}_", suffix=".log") as log:
        server = start_server(args, log)
        try:
            time.sleep(2)
            s0, w0 = proc_cpu_s(server.pid), time.monotonic()
            time.sleep(3)
            idle_cpu = (proc_cpu_s(server.pid) - s0) / (time.monotonic() - w0)
            load_start = os.getloadavg()[0]
            phases: dict[str, list[dict[str, Any]]] = {"bare": [], "source": []}
            for r in range(args.rounds):  # interleaved: bare, source, source, bare, ...
                for kind in ("bare", "source") if r % 2 == 0 else ("source", "bare"):
                    phases[kind].append(phase(kind, args, endpoint, server.pid,
                                              log.name if args.server == "node" else ""))
                    last = phases[kind][-1]
                    print(f"round {r + 1} {kind}: {last['values_per_s']:.0f} values/s, "
                          f"{last['cpu_s_per_10k_values']:.3f} CPU s per 10k values, "
                          f"server {last['server_cpu_cores']:.2f} cores, "
                          f"{last.get('server_ticks_per_s', float('nan')):.2f} ticks/s, "
                          f"load {last['loadavg_1m_after']:.1f}", file=sys.stderr)
                    if server.poll() is not None:
                        raise SystemExit(f"server exited with {server.returncode}")

            def med(kind: str, key: str) -> float | None:
                vals = [p[key] for p in phases[kind] if p.get(key) is not None]
                return float(statistics.median(vals)) if vals else None

            keys = ("values_per_s", "cpu_cores", "cpu_s_per_10k_values", "server_cpu_cores",
                    "server_cpu_s_per_10k_values", "server_ticks_per_s", "server_values_per_s",
                    "received_to_produced", "lag_ms_first_third", "lag_ms_last_third")
            summary = {k: {key: med(k, key) for key in keys} for k in phases}
            report = {
                "server": args.server, "tags": tags, "offered_values_per_s": tags * args.rate_hz,
                "nproc": os.cpu_count(), "loadavg_start_end": [load_start, os.getloadavg()[0]],
                "server_cpu_cores_no_client": idle_cpu, "median": summary, "phases": phases,
                "ratio_source_to_bare": _ratio(summary["source"]["values_per_s"],
                                               summary["bare"]["values_per_s"]),
                "cpu_per_value_source_to_bare": _ratio(summary["source"]["cpu_s_per_10k_values"],
                                                       summary["bare"]["cpu_s_per_10k_values"]),
            }
            print(json.dumps(report, indent=2, default=lambda x: round(x, 4) if isinstance(x, float) else x))
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
