"""``edge tui [--dsn DSN] [--mqtt URL]``: the terminal UI. Without --dsn it joins the running ``edge demo``.

The demo state file (:func:`demo_state_path`) is JSON written by ``edge demo`` while it runs::

    {"dsn": "postgresql://edge_reader@/factory_edge?host=/run/...", "mqtt_url": "mqtt://127.0.0.1:1883",
     "metrics": "127.0.0.1:9464", "stats_file": "/path/stats.json"}

``metrics`` (the ``edge.core.metrics`` HTTP endpoint, GET /stats) and ``stats_file`` (its JSON snapshot on
disk)
are optional; other keys (``pid``...) are ignored.

``dsn`` should name the ``edge_reader`` role; ``reader_dsn`` wins over it when both are present.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


def demo_state_path() -> Path:
    """Where ``edge demo`` writes its DSN and broker URL: ``$FE_DEMO_STATE``, else
    ``$XDG_RUNTIME_DIR/factory-edge/demo.json``, else ``<tmp>/factory-edge-<uid>/demo.json``."""
    override = os.environ.get("FE_DEMO_STATE")
    if override:
        return Path(override)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "factory-edge" / "demo.json"
    return Path(tempfile.gettempdir()) / f"factory-edge-{os.getuid()}" / "demo.json"


@dataclass(frozen=True)
class DemoState:
    dsn: str
    mqtt_url: str | None
    stats_file: Path | None
    metrics: str | None = None


def read_demo_state(path: Path | None = None) -> DemoState | None:
    """The running demo's services, or None when no demo state file is there. ValueError if malformed."""
    path = path or demo_state_path()
    try:
        doc: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the demo state: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: the demo state is not a JSON object")
    dsn = doc.get("reader_dsn") or doc.get("dsn")
    if not isinstance(dsn, str) or not dsn:
        raise ValueError(f"{path}: the demo state has no 'dsn'")
    mqtt = doc.get("mqtt_url")
    stats = doc.get("stats_file")
    metrics = doc.get("metrics")
    return DemoState(dsn, mqtt if isinstance(mqtt, str) else None,
                     Path(stats) if isinstance(stats, str) else None,
                     metrics if isinstance(metrics, str) else None)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tui",
        help="the terminal UI for plant engineers (joins the running `edge demo` by default)",
        description="Plant overview, equipment, insights feed with operator feedback, models and health. "
                    f"Without --dsn it reads the demo state file ({demo_state_path()}).",
    )
    p.add_argument("--dsn", default=None, help="historian DSN, as the edge_reader role")
    p.add_argument("--mqtt", default=None, metavar="URL", help="broker URL, shown in the health view")
    p.add_argument("--user", default=None, help="operator name stored with feedback (default $USER)")
    p.add_argument("--theme", default="dark", choices=["dark", "light"], help="colour theme (ctrl+t toggles)")
    p.add_argument("--poll", type=float, default=2.0, metavar="SECONDS", help="refresh interval (default 2)")
    p.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                   help="longest wait for one historian query before showing disconnected (default 3)")
    p.add_argument("--metrics", default=None, metavar="HOST:PORT",
                   help="the appliance's metrics endpoint (GET /stats), shown in the health view")
    p.add_argument("--stats", type=Path, default=None, metavar="FILE",
                   help="metrics snapshot file written by the appliance, if there is no endpoint")
    p.add_argument("--nats", default=None, metavar="URLS",
                   help="the site's NATS cluster (comma separated): turns on the fleet screen (key 6)")
    p.add_argument("--site", default=None, help="fleet screen: the site (default as `edge fleet status`)")
    p.add_argument("--config-dir", type=Path, default=None, metavar="DIR",
                   help="fleet screen: the config folder the desired state is rendered from "
                        "(default ./firmware-config)")
    p.set_defaults(func=_run)


@dataclass(frozen=True)
class Targets:
    dsn: str
    mqtt_url: str | None
    stats_file: Path | None
    metrics: str | None


def resolve(args: argparse.Namespace) -> Targets:
    """What to connect to: the options, filled in from the demo state. ValueError if no DSN anywhere.

    With --dsn, the demo state is read only when it names the same DSN (so a stray demo file never mixes
    one historian with another box's broker)."""
    dsn, mqtt, stats, metrics = args.dsn, args.mqtt, args.stats, args.metrics
    try:
        state = read_demo_state()
    except ValueError:
        if dsn is None:
            raise
        state = None  # a broken demo file does not matter when told where to go
    if dsn is None and state is None:
        raise ValueError(f"no --dsn given and no demo running (no {demo_state_path()}): "
                         "start `edge demo` in another terminal, or pass --dsn")
    if state is not None and (dsn is None or dsn == state.dsn):
        dsn = state.dsn
        mqtt = mqtt or state.mqtt_url
        stats = stats or state.stats_file
        metrics = metrics or state.metrics
    assert dsn is not None
    return Targets(dsn, mqtt, stats, metrics)


def _run(args: argparse.Namespace) -> int:
    if args.poll <= 0 or args.timeout <= 0:
        print("error: --poll and --timeout must be positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        t = resolve(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from tui.app import EdgeTui
    from tui.fleet_source import FleetSource
    from tui.historian_source import HistorianSource

    fleet = None
    if args.nats:
        from edge.app.config import ConfigError
        from edge.app.fleet.status import fleet_watch

        try:
            watch = fleet_watch(args.config_dir, site=args.site, servers=args.nats.split(","))
        except ConfigError as exc:
            print(f"error: fleet screen: {'; '.join(exc.problems)} (--config-dir names the folder)",
                  file=sys.stderr)
            return EXIT_USAGE
        fleet = FleetSource(watch, timeout_s=args.timeout)
    from inference.compare import compare

    source = HistorianSource(t.dsn, timeout_s=args.timeout, fleet=fleet)
    source.use_comparer(compare)  # the compare panel runs `edge models compare`'s own code
    app = EdgeTui(source, operator=args.user,
                  poll_s=args.poll, mqtt_url=t.mqtt_url, stats_file=t.stats_file, metrics_url=t.metrics,
                  theme=args.theme, dsn_label=_label(t.dsn))
    app.run()
    return 0


def _label(dsn: str) -> str:
    """The DSN without any password, for the header."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(dsn)
    except Exception:
        return ""
    host = str(info.get("host") or "local")
    return f"{info.get('user') or ''}@{host.rsplit('/', 1)[-1]}/{info.get('dbname') or ''}"
