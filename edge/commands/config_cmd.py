"""``edge config validate|render|schema``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.config import ConfigError, default_config_dir, json_schema, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="validate, render or describe the layered config")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    v = csub.add_parser("validate", help="check base, site and box layers; exit 2 on any problem")
    _common(v)
    v.set_defaults(func=_validate)

    r = csub.add_parser("render", help="print the merged config (secrets by reference) and its sha256")
    _common(r)
    r.set_defaults(func=_render)

    s = csub.add_parser("schema", help="print the JSON schema of the config")
    s.set_defaults(func=_schema)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None,
                   help="config folder (default ./firmware-config, then $FE_CONFIG_DIR)")
    p.add_argument("--box", default=None, help="box name: merges sites/<site>.toml and boxes/<box>.toml")


def _validate(args: argparse.Namespace) -> int:
    config_dir = args.dir or default_config_dir()
    try:
        loaded = load_config(config_dir, args.box)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    layers = " + ".join(str(p) for p in loaded.layers)
    print(f"ok: {layers} (sha256 {loaded.sha256()[:12]})")
    return 0


def _render(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.dir or default_config_dir(), args.box)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    print(loaded.render())
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0
