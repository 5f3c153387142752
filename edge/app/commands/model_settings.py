"""What the ``edge models`` command modules share: the ``[inference]`` settings they run under (the config's
(``--dir``, ``--box``), defaults when no config is installed, and ``--models-dir`` over both), the way they
read a time and the historian's DSN, and the way they fail."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

EXIT_FAIL = 1
EXIT_USAGE = 2


def inference_settings(args: argparse.Namespace) -> Any:
    from edge.app.config import ConfigError, default_config_dir, load_config
    from inference.settings import InferenceSettings

    try:
        loaded = load_config(args.dir if args.dir is not None else default_config_dir(), args.box)
        settings: Any = loaded.config.inference
    except (ConfigError, OSError):
        if args.dir is not None or args.box is not None:
            raise
        settings = InferenceSettings.model_validate({})
    if args.models_dir is not None:
        settings = settings.model_copy(update={"models_dir": args.models_dir})
    return settings


def historian_dsn(args: argparse.Namespace) -> str:
    """``--dsn``, else the historian of the installed config (``--dir``, ``--box``)."""
    if args.dsn:
        return str(args.dsn)
    from edge.app.config import default_config_dir, load_config

    loaded = load_config(args.dir if args.dir is not None else default_config_dir(), args.box)
    return str(loaded.config.historian.dsn)


def parse_time(s: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    t = datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def fail(msg: str, code: int = EXIT_FAIL) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code
