"""``edge historian init|status|maintain``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import psycopg

from edge.sinks.historian.settings import HistorianSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("historian", help="create, upgrade and inspect the historian database")
    hsub = p.add_subparsers(dest="historian_command", metavar="ACTION", required=True)

    i = hsub.add_parser("init", help="create or upgrade schema, roles, grants and policies (idempotent)")
    _common(i)
    i.add_argument("--flavor", choices=["auto", "timescaledb", "postgres"], default=None,
                   help="default: historian.flavor from config (auto: TimescaleDB when the extension exists)")
    i.set_defaults(func=_init)

    s = hsub.add_parser("status", help="flavor, applied migrations and row counts")
    _common(s)
    s.set_defaults(func=_status)

    m = hsub.add_parser("maintain", help="run maintenance now: partitions, retention, aggregate refresh")
    _common(m)
    m.set_defaults(func=_maintain)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dsn", default=None,
                   help="PostgreSQL DSN; init needs a superuser (default: historian.dsn from config)")
    p.add_argument("--dir", type=Path, default=None, help="config folder (for the default DSN and policies)")
    p.add_argument("--box", default=None, help="box name (config layers)")


def _settings(args: argparse.Namespace) -> HistorianSettings | None:
    from edge.app.config import ConfigError, default_config_dir, load_config

    config_dir = args.dir or default_config_dir()
    if args.dsn is not None and not (config_dir / "base.toml").is_file():
        return HistorianSettings.model_validate({})
    try:
        return load_config(config_dir, args.box).config.historian
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return None


def _connect(args: argparse.Namespace, settings: HistorianSettings) -> psycopg.Connection[tuple[object, ...]]:
    dsn = args.dsn or settings.dsn
    password = settings.password.resolve() if args.dsn is None and settings.password is not None else None
    kw: dict[str, Any] = {} if password is None else {"password": password}
    return psycopg.connect(dsn, autocommit=True, prepare_threshold=None, connect_timeout=10, **kw)


def _init(args: argparse.Namespace) -> int:
    from edge.sinks.historian.admin import init_historian
    from edge.sinks.historian.migrate import MigrationError

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        with _connect(args, settings) as conn:
            report = init_historian(conn, settings, flavor=args.flavor)
    except (psycopg.OperationalError, LookupError) as exc:
        print(f"error: cannot connect to the historian: {exc}", file=sys.stderr)
        return 1
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except psycopg.errors.InsufficientPrivilege as exc:
        print(f"error: init needs a superuser or the database owner: {exc}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line)
    return 0


def _status(args: argparse.Namespace) -> int:
    from edge.sinks.historian.admin import status

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        with _connect(args, settings) as conn:
            st = status(conn)
    except (psycopg.OperationalError, LookupError) as exc:
        print(f"error: cannot connect to the historian: {exc}", file=sys.stderr)
        return 1
    for line in st.lines():
        print(line)
    return 0 if st.flavor else 1


def _maintain(args: argparse.Namespace) -> int:
    from edge.sinks.historian.admin import run_maintenance

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        with _connect(args, settings) as conn:
            print(run_maintenance(conn))
    except (psycopg.OperationalError, LookupError) as exc:
        print(f"error: cannot connect to the historian: {exc}", file=sys.stderr)
        return 1
    return 0
