"""``edge demo``: the simulated plant end to end (see :mod:`edge.app.demo.run`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="simulated plant + embedded services + the whole pipeline, with live insights",
        description="Start a simulated plant (OPC-UA, 2 lines x 3 presses at 10 Hz, MES events), an embedded "
        "PostgreSQL and MQTT broker unless given, train a model on the plant's first simulated minutes, then "
        "ingest, contextualize, score and store everything live. Ctrl-C stops it cleanly.",
    )
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--historian-dsn", default=None, metavar="DSN",
                   help="use this PostgreSQL/TimescaleDB (a superuser DSN: the demo creates the schema and "
                   "roles) instead of an embedded one")
    p.add_argument("--mqtt-url", default=None, metavar="URL",
                   help="use this broker instead of an embedded one")
    p.add_argument("--data-dir", type=Path, default=Path(".demo"),
                   help="where the demo keeps its database, spool, models and labels (default ./.demo)")
    p.add_argument("--config-dir", type=Path, default=None, help="config folder (default ./firmware-config)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (faults and signals)")
    p.add_argument("--baseline-minutes", type=float, default=15.0,
                   help="simulated minutes of normal running to train the model on (default 15)")
    p.add_argument("--faults", default="auto", metavar="SPEC",
                   help="faults to inject: auto (a schedule drawn from the seed, scaled to --duration), "
                   "none, or KIND:TARGET@START+DURATION,... in seconds from the start of the live plant")
    p.add_argument("--json", action="store_true",
                   help="print the summary, with the scorecard, as one JSON object on stdout at the end (the "
                   "progress lines go to stderr)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import logging

    from edge.app.demo.run import DemoOptions, run_demo
    from edge.core.logs import setup_logging

    # The demo talks through its own lines; logs show warnings unless asked for more. The simulator's
    # unsecured endpoint makes asyncua warn on every start: expected here, so quiet.
    setup_logging(args.log_level or "warning", args.log_format or "auto")
    logging.getLogger("asyncua").setLevel(logging.ERROR)

    opts = DemoOptions(duration_s=args.duration, historian_dsn=args.historian_dsn, mqtt_url=args.mqtt_url,
                       data_dir=args.data_dir, config_dir=args.config_dir, seed=args.seed,
                       baseline_s=args.baseline_minutes * 60, faults=args.faults,
                       json_out=args.json)
    if args.json:
        opts.out = lambda line: print(line, file=sys.stderr, flush=True)
    return asyncio.run(run_demo(opts))
