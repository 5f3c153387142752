"""The CLI hooks of ``edge models evaluate`` and ``edge replay`` for tests, whether or not ``models_cmd`` and
``cli.COMMAND_MODULES`` have them yet (idempotent: nothing is added twice)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def _subparsers(parser: argparse.ArgumentParser) -> Any:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


@contextmanager
def hooked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from edge.app import cli
    from edge.app.commands import evaluate_cmd, models_cmd

    original = models_cmd.register

    def register(sub: Any) -> None:
        original(sub)
        msub = _subparsers(sub.choices["models"])
        if "evaluate" not in msub.choices:
            evaluate_cmd.register(msub)

    monkeypatch.setattr(models_cmd, "register", register)
    if "edge.app.commands.replay_cmd" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "edge.app.commands.replay_cmd"])
    yield
