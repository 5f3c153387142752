"""``edge fleet``: a site's boxes from their heartbeats on NATS JetStream, against ``firmware-config/``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.sinks.jetstream.fleet_read import FleetWatch


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fleet", help="the boxes of a site: heartbeats, silence, config drift",
                       description="Read the last heartbeat of every box of a site (stream FE_<SITE>_FLEET) "
                       "and compare each box's config hash with what the config folder renders for it.")
    fsub = p.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--dir", type=Path, default=None, help="config folder (default ./firmware-config)")
        q.add_argument("--site", default=None,
                       help="site (default: the only sites/*.toml, else base box.site)")
        q.add_argument("--servers", default=None,
                       help="NATS URLs, comma separated (default: jetstream.servers of base.toml)")
        q.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")

    st = fsub.add_parser("status", help="one line per box: state (ok, silent, drift, unknown), age, hashes")
    common(st)
    st.add_argument("--json", action="store_true", help="the rows as JSON")
    st.add_argument("--silent-after", type=float, default=3.0, metavar="N",
                    help="a box is silent after N of its heartbeat intervals without one (default 3)")
    st.add_argument("--expect-all", action="store_true",
                    help="also list boxes of the config folder never heard from (state missing)")
    st.add_argument("--check", action="store_true", help="exit 1 when any box is not ok")
    st.set_defaults(func=_status)

    df = fsub.add_parser("diff", help="the rendered config of BOX against the one it reports")
    common(df)
    df.add_argument("box")
    df.set_defaults(func=_diff)


def _watch(args: argparse.Namespace, *, expect_all: bool = False) -> FleetWatch | None:
    from edge.app.config import ConfigError
    from edge.app.fleet.status import fleet_watch

    try:
        return fleet_watch(args.dir, site=args.site,
                           servers=args.servers.split(",") if args.servers else None,
                           silent_after=getattr(args, "silent_after", 3.0), expect_all=expect_all)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return None


def _nats_error(watch: FleetWatch, exc: Exception) -> None:
    print(f"error: NATS at {','.join(watch.servers)}: {type(exc).__name__}: {exc} "
          "(is the site cluster up? --servers names it)", file=sys.stderr)


def _status(args: argparse.Namespace) -> int:
    from edge.sinks.jetstream.fleet_table import table

    watch = _watch(args, expect_all=args.expect_all)
    if watch is None:
        return 3
    try:
        boxes = asyncio.run(watch.boxes(time.time(), timeout_s=args.timeout))
    except Exception as exc:
        _nats_error(watch, exc)
        return 3
    if args.json:
        print(json.dumps({"site": watch.site, "boxes": [b.as_dict() for b in boxes]}, indent=2, default=str))
    else:
        print(f"site {watch.site}: {len(boxes)} boxes")
        print(table(boxes))
    return 1 if args.check and any(b.state != "ok" for b in boxes) else 0


def _diff(args: argparse.Namespace) -> int:
    from edge.sinks.jetstream.fleet_read import heartbeats
    from edge.sinks.jetstream.fleet_table import diff

    watch = _watch(args)
    if watch is None:
        return 3
    try:
        beats = asyncio.run(heartbeats(watch.servers, watch.site, timeout_s=args.timeout))
    except Exception as exc:
        _nats_error(watch, exc)
        return 3
    reported = next((hb for hb in beats if hb.get("box") == args.box), None)
    if reported is None:
        print(f"error: no heartbeat from box {args.box!r} at site {watch.site} "
              "(`edge fleet status` lists the boxes heard from)", file=sys.stderr)
        return 1
    sha, body, problem = watch.desired(args.box)
    if problem is not None:
        print(f"{args.box}: {problem}", file=sys.stderr)
    if sha == reported.get("config_sha256"):
        print(f"{args.box}: no drift (sha256 {sha})")
        return 0
    print(diff(args.box, body, reported.get("config_body")), end="")
    return 1
