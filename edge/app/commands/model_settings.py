"""The ``[inference]`` settings the ``edge models`` commands run under: the config's (``--dir``, ``--box``),
defaults when no config is installed, and ``--models-dir`` over both."""

from __future__ import annotations

import argparse
from typing import Any


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
