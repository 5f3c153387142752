"""What the per-set tests share: where the labelled sets lie (``FE_SHARED_DATA``, else ``shared/data``
beside the checkout), ``edge models evaluate`` run through the registered command with its JSON document
returned, and the table converter of ``bench/quality`` run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("FE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def data_dir(name: str) -> Path:
    """The set's folder; the test is skipped (with the path in the reason) when it is absent."""
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"{name} data not found at {path} (set FE_SHARED_DATA to the folder holding it)")
    return path


def evaluate(tmp_path: Path, *argv: str) -> dict:  # type: ignore[type-arg]
    """``edge models evaluate ARGV --json FILE`` through the CLI; its JSON document."""
    from edge.app.cli import main

    out = tmp_path / "evaluate.json"
    rc = main(["models", "evaluate", *argv, "--quiet", "--json", str(out)])
    assert rc == 0
    doc: dict = json.loads(out.read_text())  # type: ignore[type-arg]
    return doc


def to_table(*argv: str) -> None:
    """``python bench/quality/to_table.py ARGV`` from the repository root."""
    run = subprocess.run([sys.executable, "bench/quality/to_table.py", *argv], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stderr


def share(flagged: int, points: int) -> float:
    return flagged / points if points else 0.0
