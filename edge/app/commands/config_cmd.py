"""``edge config validate|render|schema``: exit 0 when fine, 2 on any config problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.app.config import (
    ConfigError,
    default_config_dir,
    known_boxes,
    load_config,
    missing_secrets,
    schema_text,
)

EXIT_CONFIG = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="validate, render or describe the layered config")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    v = csub.add_parser(
        "validate",
        help="check the layers of one box (or base.toml and every box); exit 2 on any problem",
    )
    _common(v)
    v.add_argument("--secrets", action="store_true",
                   help="also check that every secret can be read here (names only are printed)")
    v.set_defaults(func=_validate)

    r = csub.add_parser("render", help="print the merged config (secrets by reference) and its sha256")
    _common(r)
    r.set_defaults(func=_render)

    s = csub.add_parser("schema", help="print the JSON schema of the config")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--write", type=Path, metavar="FILE", help="write the schema to FILE instead")
    g.add_argument("--check", type=Path, metavar="FILE", help="exit 2 unless FILE holds the current schema")
    s.set_defaults(func=_schema)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None,
                   help="config folder (default ./firmware-config, then $FE_CONFIG_DIR)")
    p.add_argument("--box", default=None, help="box name: merges its site's layers and boxes/<box>.toml")


def _errors(exc: ConfigError, seen: set[str] | None = None) -> int:
    for line in exc.problems:
        if seen is None or line not in seen:
            print(f"error: {line}", file=sys.stderr)
        if seen is not None:
            seen.add(line)
    return EXIT_CONFIG


def _validate(args: argparse.Namespace) -> int:
    config_dir = args.dir if args.dir is not None else default_config_dir()
    boxes: list[str | None] = [args.box]
    if args.box is None:
        boxes = [None, *known_boxes(config_dir)]
    failed = False
    seen: set[str] = set()  # a problem in a shared layer is reported once, not once per box
    for box in boxes:
        try:
            loaded = load_config(config_dir, box)
        except ConfigError as exc:
            _errors(exc, seen)
            failed = True
            continue
        layers = " + ".join(str(p) for p in loaded.layers)
        for line in loaded.warnings[:20]:
            print(f"warning: {line}", file=sys.stderr)
        if len(loaded.warnings) > 20:
            print(f"warning: ... and {len(loaded.warnings) - 20} more", file=sys.stderr)
        if args.secrets:
            missing = missing_secrets(loaded.config)
            for line in missing:
                print(f"error: {loaded.layers[-1]}: {line}", file=sys.stderr)
            if missing:
                failed = True
                continue
        print(f"ok: {layers} (sha256 {loaded.sha256()[:12]})")
    return EXIT_CONFIG if failed else 0


def _render(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.dir if args.dir is not None else default_config_dir(), args.box)
    except ConfigError as exc:
        return _errors(exc)
    print(loaded.render())
    return 0


def _schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.write is not None:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
        print(f"wrote {args.write}")
        return 0
    if args.check is not None:
        try:
            current = args.check.read_text()
        except OSError as exc:
            print(f"error: {args.check}: cannot be read: {exc.strerror}", file=sys.stderr)
            return EXIT_CONFIG
        if current != text:
            print(f"error: {args.check} is out of date; run: edge config schema --write {args.check}",
                  file=sys.stderr)
            return EXIT_CONFIG
        print(f"ok: {args.check} is current")
        return 0
    sys.stdout.write(text)
    return 0
