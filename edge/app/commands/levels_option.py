"""``--levels all|auto|none`` on ``edge models train`` and ``edge models evaluate``: which signals keep their
level statistics in the models these commands train (``inference.levels``). One option for both, added
after both parsers exist, so a model trained by ``train`` and one trained per file by ``evaluate`` are
featurized by the same rule."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

HELP = ("which signals keep their level statistics (mean, rms, min, max): all (default), none, or auto: "
        "a signal whose level drifts within the training windows gets its level-free statistics only "
        "(the decision is in the manifest's levels and printed)")


def wire(models_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the option to ``train`` and ``evaluate`` of the ``edge models`` group (``models_sub``)."""
    from inference.levels import MODES

    for name in ("train", "evaluate"):
        p = models_sub.choices[name]
        p.add_argument("--levels", choices=MODES, default=None, help=HELP)
        p.set_defaults(func=_with_levels(p.get_default("func")))


def _with_levels(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The command run with its ``--levels`` as the mode of every training call it makes."""

    def run(args: argparse.Namespace) -> int:
        from edge.app.commands.model_settings import EXIT_USAGE, fail
        from inference.levels import using_mode

        mode: Any = getattr(args, "levels", None)
        if mode is not None and getattr(args, "model", None):
            return fail("--levels chooses what a model is trained on; a registry --model has its own",
                        EXIT_USAGE)
        with using_mode(mode):
            return func(args)

    return run
