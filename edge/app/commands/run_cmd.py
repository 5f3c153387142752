"""``edge run``: the appliance itself, from the layered config (what systemd starts on a box)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the appliance for a box until SIGTERM or Ctrl-C",
                       description="Load base, site and box config, start every source, stage and sink under "
                       "the supervisor, and stop cleanly (sources first, queues drained) on SIGTERM.")
    p.add_argument("--dir", type=Path, default=None, help="config folder (default ./firmware-config)")
    p.add_argument("--box", default=None, help="box name (boxes/<box>.toml)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    p.add_argument("--no-inference", action="store_true", help="ingest and store only")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edge.app.config import ConfigError, default_config_dir, load_config
    from edge.app.pipeline import build_pipeline
    from edge.core.logs import setup_logging

    try:
        loaded = load_config(args.dir or default_config_dir(), args.box)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    cfg = loaded.config
    # every secret is read before anything starts: a missing one is a config error (exit 2, which the unit
    # does not restart), named by its reference (env variable or file), never by a value
    from edge.app.config import missing_secrets

    missing = missing_secrets(cfg)
    for line in missing:
        print(f"error: {loaded.layers[-1]}: {line}", file=sys.stderr)
    if missing:
        return 2
    setup_logging(args.log_level or cfg.log.level, args.log_format or cfg.log.format)

    async def main() -> None:
        pipeline = build_pipeline(cfg, with_inference=cfg.inference.enabled and not args.no_inference)
        await pipeline.supervisor.run(args.duration)

    asyncio.run(main())
    return 0
