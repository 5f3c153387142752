"""Retraining during the end-to-end run: does a retrain lower the sustained rate of ``bench_e2e.py``?

The setup is ``bench_e2e.py``'s (``run_rate`` runs each arm): real PostgreSQL (a fresh database, dropped at
the end), Mosquitto, MQTT JSON in at ``--rate`` samples/s offered, the demo's PCA baseline, the outbox out.
Two arms of the same ``--duration``, interleaved over ``--rounds`` rounds (a b, then b a, ...):

- (a) the pipeline as ``bench_e2e.py`` runs it (no lifecycle manager);
- (b) the same with the lifecycle manager on, as ``edge run`` wires it (``[inference.lifecycle]``
  ``enabled = true``): its ``schedule_s`` trigger starts the product's retrain (``inference.retrain``: the
  training child with its ``nice`` and ``memory_mb`` budget, the candidate registered and set challenger,
  then scored in shadow) about ``--retrain-at`` seconds into the load, over a ``lookback_s`` of the history
  this run wrote (``--lookback-s``, default 60 s: the end of the previous arm's load, the gap between arms
  and this arm's first seconds; the training's blocked cross-calibration needs windows spread over some
  40 s, more than a few seconds of one arm hold).

The settings of (b), as a user would write them: ``enabled = true``, ``schedule_s``,
``check_interval_s = 1``, ``lookback_s``, ``on_drift = false`` and ``false_alarm_labels = 0`` (so the
schedule is the only trigger and the retrain starts when planned); ``min_good_windows`` (200), ``nice``,
``memory_mb`` and ``timeout_s`` keep their defaults unless ``--min-good-windows`` is given. The first round
runs (a) first, so every (b) has an arm's history before it.

``retrain`` needs a champion that names its equipment; the demo's baseline names none, so the bench registers
the same package with the bench's presses as its ``assets`` (what ``deploy`` scores is unchanged: every press)
and promotes it. Each arm gets its own copy of that registry, so each (b) arm retrains once from the same
champion.

Per arm: samples offered (sent), stored (``samples`` rows of the arm's source), the sustained stored rate
(rows the historian sink committed per second, the least-squares slope of its ``committed`` counter polled
every 0.1 s, between 5 s after the publisher started and its end: the samples plus the few feature, insight
and event rows), ``bench_e2e``'s sustained ingested rate, insight latency p50/p99 (``bench_e2e``'s
definition), and for (b) the retrain: when its child was first seen and when it ended (s into the load; it is
seen once it has set its niceness), its wall time as the product audits it, its CPU seconds (``psutil``; the
child is the pipeline process's only niced child), the windows it trained on, or why it failed. Last: the
median per arm and the ratio (b)/(a) of the sustained stored rate, per round and of the medians.

    flock /tmp/fe-cpu.lock .venv/bin/python bench/bench_retrain_e2e.py --rate 50000 --duration 90 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_e2e import MQTT_HOST, MQTT_PORT, PG_ADMIN, bench_config, pct, run_rate, value_pool  # noqa: E402

LOAD_START_S = 3.0  # run_rate: ~2 s warm-up and 1 s lead after the source subscribed, from pipeline start


# ------------------------------------------------------------------------------------------------ watchers
class Watch:
    """Polls, in a thread beside the pipeline: the rows the historian sink has committed (its ``committed``
    counter), and the CPU of the pipeline process's niced children (the training child lowers its own
    priority; nothing else does)."""

    def __init__(self, nice: int, every_s: float = 0.1) -> None:
        self.nice, self.every_s = nice, every_s
        self.inserted: list[tuple[float, float]] = []
        self.children: dict[int, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        import psutil

        from edge.core.metrics import METRICS

        me = psutil.Process()
        while not self._stop.is_set():
            now = time.time()
            self.inserted.append((now, METRICS.get("historian", "committed")))
            for child in me.children(recursive=True):
                try:
                    if child.nice() < self.nice:
                        continue
                    t = child.cpu_times()
                    cpu = t.user + t.system + t.children_user + t.children_system
                except psutil.Error:
                    continue
                seen = self.children.setdefault(child.pid, {"first": now, "cpu": 0.0})
                seen["last"], seen["cpu"] = now, max(seen["cpu"], cpu)
            self._stop.wait(self.every_s)

    def stored_rate(self, t0: float, t1: float) -> float:
        """Rows committed per second between ``t0`` and ``t1``: a fitted slope, as the historian commits in
        batches (end points alone would carry a batch's worth of noise)."""
        xs = [(t, n) for t, n in self.inserted if t0 <= t <= t1]
        if len(xs) < 10:
            return math.nan
        t, n = np.asarray(xs).T
        return float(np.polyfit(t - t[0], n, 1)[0])


def retrain_of(models_dir: Path, name: str) -> dict[str, Any]:
    """What the lifecycle manager did in this arm's registry: the retrain's audit detail, or its notice."""
    from inference.packages import Registry

    for e in reversed(Registry(models_dir).audit_log()):
        if e.get("model") == name and e["action"] == "retrain":
            return {"ok": True, "windows": e["detail"]["windows"], "seconds": e["detail"]["child"]["seconds"],
                    "version": e.get("version")}
        if e.get("model") == name and e["action"] == "notice":
            return {"ok": False, "reason": e["detail"].get("reason")}
    return {"ok": False, "reason": "no retrain in the audit (the trigger did not fire during the run)"}


# ------------------------------------------------------------------------------------------------- one arm
async def run_arm(args: argparse.Namespace, base: Any, services: Any, models0: Path, arm: str, rnd: int,
                  names: list[str], vals: Any, tmp: Path) -> dict[str, Any]:
    from edge.app.demo.run import MODEL_NAME

    models = tmp / f"models-{arm}{rnd}"
    shutil.copytree(models0, models)
    inf = base.inference.model_copy(update={"models_dir": models})
    if arm == "b":
        inf = inf.model_copy(update={"lifecycle": inf.lifecycle.model_copy(update={
            "enabled": True, "schedule_s": args.retrain_at + LOAD_START_S, "check_interval_s": 1.0,
            "lookback_s": args.lookback_s, "on_drift": False, "false_alarm_labels": 0,
            **({"min_good_windows": args.min_good_windows} if args.min_good_windows else {}),
        })})
    cfg = base.model_copy(update={"inference": inf})
    with Watch(inf.lifecycle.nice) as watch:
        r = await run_rate(args, cfg, services, args.rate, names, vals, arm=f"-{arm}{rnd}")
    r["arm"], r["round"] = arm, rnd
    r["stored_rate"] = watch.stored_rate(r["t0"] + 5, r["t1"])
    r["retrain"] = retrain_of(models, MODEL_NAME) if arm == "b" else None
    if watch.children:
        c = min(watch.children.items(), key=lambda kv: kv[1]["first"])[1]
        r["child"] = {"start_s": c["first"] - r["t0"], "wall_s": c["last"] - c["first"], "cpu_s": c["cpu"],
                      "n": len(watch.children)}
    else:
        r["child"] = None
    return r


def scope_champion(cfg: Any) -> None:
    """The baseline package again, naming the bench's presses as its equipment, promoted (see above)."""
    from edge.app.demo.run import MODEL_NAME
    from inference.packages import Registry

    reg = Registry(cfg.inference.models_dir)
    pkg = reg.package(MODEL_NAME)
    manifest = {k: v for k, v in pkg.manifest.items() if k != "version"}
    site = f"{cfg.assets.enterprise}/{cfg.assets.site}"
    manifest["assets"] = sorted(f"{site}/{p}" for p in cfg.assets.equipment)
    scoped = reg.add(manifest, pkg.onnx, pkg.holdout())
    reg.validate(MODEL_NAME, scoped.version)
    reg.promote(MODEL_NAME, scoped.version, force=True, reason="bench: the baseline scoped to the presses")


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    import psycopg

    from edge.app.demo.run import DemoOptions, demo_config, start_services, train_baseline
    from edge.core.ports import free_port

    dbname = f"fe_bench_retrain_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    tmp = Path(tempfile.mkdtemp(prefix="fe-bench-retrain-"))
    services = None
    results: list[dict[str, Any]] = []
    try:
        opts = DemoOptions(historian_dsn=f"postgresql://postgres@127.0.0.1:5432/{dbname}",
                           mqtt_url=f"mqtt://{MQTT_HOST}:{MQTT_PORT}", data_dir=tmp,
                           baseline_s=args.baseline_s, out=lambda m: None)
        services = start_services(opts)
        base = demo_config(opts, services, free_port(), free_port())
        cfg0 = bench_config(base, args.equipment, "x", "x", args.per_msg)
        train_baseline(cfg0, opts)
        scope_champion(cfg0)
        print(f"baseline trained and scoped to {len(cfg0.assets.equipment)} presses; database {dbname}",
              flush=True)
        names, vals = value_pool(cfg0, 120.0, seed=11)
        for rnd in range(args.rounds):
            for arm in ("a", "b") if rnd % 2 == 0 else ("b", "a"):
                print(f"round {rnd + 1} arm ({arm}): {args.rate:,} samples/s for {args.duration:.0f} s ...",
                      flush=True)
                models0 = Path(cfg0.inference.models_dir)
                r = await run_arm(args, base, services, models0, arm, rnd, names, vals, tmp)
                results.append(r)
                print("  " + line(r), flush=True)
    finally:
        if services is not None:
            services.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
    return results


# ------------------------------------------------------------------------------------------------- report
def retrain_cells(r: dict[str, Any]) -> tuple[str, str, str, str]:
    if r["arm"] != "b":
        return "-", "-", "-", "-"
    c, t = r["child"], r["retrain"]
    start = f"{c['start_s']:.1f}" if c else "n/a"
    if c and t["ok"]:
        start += f" to {c['start_s'] + t['seconds']:.1f}"
    wall = f"{t['seconds']:.1f}" if t["ok"] else f"failed: {str(t['reason'])[:100]}"
    cpu = f"{c['cpu_s']:.1f}" if c else "n/a"
    return start, wall, cpu, str(t["windows"]) if t["ok"] else "-"


def line(r: dict[str, Any]) -> str:
    s, w, c, n = retrain_cells(r)
    return (f"sent {r['sent']:,}, stored {r['stored']:,}, sustained stored {r['stored_rate']:,.0f}/s "
            f"(ingested {r['sustained']:,.0f}/s), latency p50 {pct(r['lat'], 50):.3f} s p99 "
            f"{pct(r['lat'], 99):.3f} s over {r['n']} insights (of {r['insights_all']}); "
            f"retrain from {s} s into the load, wall {w} s, CPU {c} s, windows {n}; "
            f"load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}")


def report(results: list[dict[str, Any]]) -> str:
    out = [
        "| round | arm | samples offered | stored | sustained stored/s | sustained ingested/s "
        "| insights | latency p50 s | latency p99 s | retrain s into the load | retrain wall s "
        "| retrain CPU s | windows |",
        "| ---: | --- |" + " ---: |" * 11,
    ]
    for r in results:
        s, w, c, n = retrain_cells(r)
        out.append(f"| {r['round'] + 1} | ({r['arm']}) | {r['sent']:,} | {r['stored']:,} "
                   f"| {r['stored_rate']:,.0f} | {r['sustained']:,.0f} | {r['n']} | {pct(r['lat'], 50):.3f} "
                   f"| {pct(r['lat'], 99):.3f} "
                   f"| {s} | {w} | {c} | {n} |")
    med = {arm: statistics.median([r["stored_rate"] for r in results if r["arm"] == arm]) for arm in "ab"}
    per_round = []
    for rnd in sorted({r["round"] for r in results}):
        a = [r["stored_rate"] for r in results if r["round"] == rnd and r["arm"] == "a"]
        b = [r["stored_rate"] for r in results if r["round"] == rnd and r["arm"] == "b"]
        if a and b:
            per_round.append(f"round {rnd + 1} {b[0] / a[0]:.3f}")
    out.append("")
    out.append(f"sustained stored rate, median: (a) {med['a']:,.0f}/s, (b) {med['b']:,.0f}/s; ratio (b)/(a) "
               f"{med['b'] / med['a']:.3f} ({', '.join(per_round)})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=50_000, help="offered samples/s")
    ap.add_argument("--duration", type=float, default=90.0, help="seconds of load per arm")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of both arms (order alternates)")
    ap.add_argument("--retrain-at", type=float, default=5.0, help="(b): about when the retrain starts, s "
                    "into the load")
    ap.add_argument("--lookback-s", type=float, default=60.0, help="(b): inference.lifecycle.lookback_s")
    ap.add_argument("--min-good-windows", type=int, default=0, help="(b): inference.lifecycle."
                    "min_good_windows (default: the product's)")
    ap.add_argument("--equipment", type=int, default=60, help="presses (4 tags each; the demo's 6 first)")
    ap.add_argument("--per-msg", type=int, default=100, help="samples per MQTT message")
    ap.add_argument("--baseline-s", type=float, default=900.0, help="simulated seconds to train on")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = asyncio.run(main_async(args))
    print()
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
