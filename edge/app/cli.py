"""The ``edge`` command. Each command group lives in its own module with a ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from edge import __version__

# Modules that add command groups; each defines register(subparsers) and sets args.func.
COMMAND_MODULES = [
    "edge.app.commands.config_cmd",
    "edge.app.commands.historian_cmd",
    "edge.app.commands.demo_cmd",
    "edge.app.commands.run_cmd",
    "edge.app.commands.stats_cmd",
    "edge.app.commands.ingest_cmd",
    "edge.app.commands.mes_cmd",
    "edge.app.commands.models_cmd",
    "edge.app.commands.tui_cmd",
    "edge.app.commands.replay_cmd",
    "edge.app.commands.fleet_cmd",
    "edge.app.commands.report_cmd",
]

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge",
        description="Factory Edge: plant sensor streams to contextualized insights, on the edge box.",
        epilog="Run 'edge COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"factory-edge {__version__}")
    parser.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default=None, choices=["auto", "json", "text"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command group not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from edge.core.logs import setup_logging

    setup_logging(args.log_level or "info", args.log_format or "auto")
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
