"""`edge models list`'s retraining lines: the runs `inference.retrain_progress` keeps in the historian."""

from __future__ import annotations

import argparse
import sys


def print_runs(args: argparse.Namespace) -> None:
    """``edge models list``'s retraining lines (``--dsn``, else the config's historian); when the historian
    cannot answer, one line on stderr says so and the registry listing goes on."""
    from edge.app.commands.model_settings import historian_dsn
    from inference.retrain_progress import latest, line

    try:
        runs = latest(historian_dsn(args))
    except Exception as exc:
        print(f"retraining runs not shown: {(str(exc).splitlines() or [type(exc).__name__])[0]}",
              file=sys.stderr)
        return
    for r in runs:
        print(f"retrain {line(r)}")
