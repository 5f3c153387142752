"""``edge stats``: the delivery counters of a running (or last run) appliance.

Reads ``GET /stats`` from the metrics endpoint (``--url``, default ``metrics.listen`` from the config), or the
JSON snapshot the appliance writes (``--state-file``, default ``metrics.state_file``). Without either option
it tries the endpoint first, then the state file. Exit 1 when neither answers, 2 on usage or config errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge.app.config import ConfigError, default_config_dir, load_config
from edge.core.metrics import read_state_file
from edge.core.settings import MetricsSettings

COLUMNS = ("received", "committed", "duplicate", "spooled", "replayed", "published", "rejected", "dropped")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("stats", help="delivery counters per stage (received, committed, spooled, ...)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--url", default=None, help="metrics endpoint, e.g. http://127.0.0.1:9464")
    src.add_argument("--state-file", type=Path, default=None, help="JSON snapshot written by the appliance")
    p.add_argument("--json", action="store_true", help="print the raw snapshot as JSON")
    p.add_argument("--dir", type=Path, default=None, help="config folder (for the defaults)")
    p.add_argument("--box", default=None, help="box name (for the defaults)")
    p.set_defaults(func=_stats)


def fetch(url: str, timeout: float = 3.0) -> dict[str, Any]:
    base = url if "://" in url else f"http://{url}"
    base = base.rstrip("/")
    if base.endswith("/metrics"):
        base = base[: -len("/metrics")]
    target = base if base.endswith("/stats") else f"{base}/stats"
    with urllib.request.urlopen(target, timeout=timeout) as resp:
        doc = json.loads(resp.read())
    if not isinstance(doc, dict):
        raise ValueError(f"{target}: not a metrics snapshot")
    return doc


def _settings(args: argparse.Namespace) -> MetricsSettings:
    config_dir = args.dir or default_config_dir()
    if args.dir is None and args.box is None and not (config_dir / "base.toml").is_file():
        return MetricsSettings()
    return load_config(config_dir, args.box).config.metrics


def _running_demo() -> dict[str, Any] | None:
    """The running demo's state (``edge.app.commands.tui_cmd.demo_state_path``), if it names a metrics
    endpoint."""
    from edge.app.commands.tui_cmd import demo_state_path

    try:
        state = json.loads(demo_state_path().read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("metrics") else None


def _stats(args: argparse.Namespace) -> int:
    problems: list[str] = []
    doc: dict[str, Any] | None = None
    if args.url:
        try:
            doc = fetch(args.url)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            problems.append(f"{args.url}: {exc}")
    elif args.state_file:
        try:
            doc = read_state_file(args.state_file)
        except (OSError, ValueError) as exc:
            problems.append(f"{args.state_file}: {exc}")
    elif args.dir is None and args.box is None and (demo := _running_demo()) is not None:
        # `edge demo` in another terminal: read its endpoint, as `edge tui` does.
        try:
            doc = fetch(str(demo["metrics"]))
        except (OSError, ValueError, urllib.error.URLError) as exc:
            problems.append(f"demo at {demo['metrics']}: {exc}")
    else:
        try:
            settings = _settings(args)
        except ConfigError as exc:
            for line in exc.problems:
                print(f"error: {line}", file=sys.stderr)
            return 2
        try:
            doc = fetch(settings.listen)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            problems.append(f"http://{settings.listen}: {exc}")
            try:
                doc = read_state_file(settings.state_file)
            except (OSError, ValueError) as exc2:
                problems.append(f"{settings.state_file}: {exc2}")
    if doc is None:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(render_table(doc))
    return 0


def _total(value: Any) -> float:
    if isinstance(value, dict):
        return float(sum(v for v in value.values() if isinstance(v, int | float)))
    return float(value) if isinstance(value, int | float) else 0.0


def render_table(doc: dict[str, Any]) -> str:
    counters: dict[str, dict[str, Any]] = doc.get("counters", {})
    age = time.time() - float(doc.get("ts", time.time()))
    lines = [f"snapshot {age:.0f}s old"]
    extra = sorted({c for per in counters.values() for c in per} - set(COLUMNS))
    cols = [*COLUMNS, *extra]
    width = max([5, *(len(s) for s in counters)])
    lines.append(f"{'stage':<{width}}  " + "  ".join(f"{c:>10}" for c in cols))
    for stage, per in sorted(counters.items()):
        cells = [f"{_total(per[c]):>10.0f}" if c in per else f"{'-':>10}" for c in cols]
        lines.append(f"{stage:<{width}}  " + "  ".join(cells))
    reasons = [(stage, c, r, n) for stage, per in sorted(counters.items()) for c, v in sorted(per.items())
               if isinstance(v, dict) for r, n in sorted(v.items())]
    if reasons:
        lines.append("")
        lines.append("by reason:")
        lines.extend(f"  {stage} {c} {r}: {n}" for stage, c, r, n in reasons)
    gauges: dict[str, Any] = doc.get("gauges", {})
    if gauges:
        lines.append("")
        lines.append("gauges:")
        lines.extend(f"  {k} = {v}" for k, v in sorted(gauges.items()))
    return "\n".join(lines)
