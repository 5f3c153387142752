"""``--levels all|auto|none`` of ``edge models train`` and ``edge models evaluate``: which signals keep their
level statistics in the models these commands train (``inference.levels``). One definition for both, so a
model trained by ``train`` and one trained per file by ``evaluate`` are featurized by the same rule."""

from __future__ import annotations

import argparse

HELP = ("which signals keep their level statistics (mean, rms, min, max): all (default), none, or auto: "
        "a signal whose level drifts within the training windows gets its level-free statistics only "
        "(the decision is in the manifest's levels and printed)")


def add_levels_argument(parser: argparse.ArgumentParser) -> None:
    from inference.levels import MODES

    parser.add_argument("--levels", choices=MODES, default=None, help=HELP)
