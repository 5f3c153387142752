"""What ``edge models train --auto`` runs before the fit: the training part read as ``edge models train``
reads it (the same rows, columns and names), the choice of ``inference.auto_select`` on those rows only, the
candidates' table for the terminal, and the settings and manifest entry the chosen candidate trains with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.auto_select import STAT_SETS, Candidate, Say, Selection, candidate_settings, select
from inference.training_set import read_table


@dataclass
class AutoChoice:
    selection: Selection
    kind: str
    settings: Any  # the [inference] settings with the chosen window, hop and grid
    stats: tuple[str, ...]  # the chosen statistics (empty: every one)
    keep: np.ndarray | None = None  # with training labels: the normal rows, what the final fit sees

    def manifest_extra(self) -> dict[str, Any]:
        return {"auto_select": self.selection.manifest()}


def parse_windows(s: str) -> list[tuple[int, int]]:
    """``W:H,...`` (window and hop in rows) into pairs; ValueError on a malformed or impossible pair."""
    out = []
    for item in (p.strip() for p in s.split(",") if p.strip()):
        w, sep, h = item.partition(":")
        try:
            pair = (int(w), int(h))
        except ValueError:
            raise ValueError(f"--auto-windows: {item!r} is not WINDOW_ROWS:HOP_ROWS") from None
        if not sep or pair[0] < 1 or not 1 <= pair[1] <= pair[0]:
            raise ValueError(f"--auto-windows: {item!r}: need window >= 1 and 1 <= hop <= window (rows)")
        out.append(pair)
    if not out:
        raise ValueError("--auto-windows: no WINDOW_ROWS:HOP_ROWS given")
    return out


def training_rows(path: Path, time_column: str | None, ignore: Sequence[str],
                  rows: tuple[int | None, int | None] | None, rename: dict[str, str] | None,
                  label_column: str | None) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """(ts_us, signals, labels or None) of the training part; ``label_column`` is read as labels (0 =
    normal), never as a signal."""
    keep = [c for c in ignore if c != label_column]
    ts, signals = read_table(path, time_column, ignore=keep, rows=rows, rename=rename)
    if label_column is None:
        return ts, signals, None
    name = (rename or {}).get(label_column, label_column)
    if name not in signals:
        raise ValueError(f"--auto-label-column: {path.name} has no numeric column {label_column!r}")
    labels = np.nan_to_num(signals.pop(name), nan=0.0)
    return ts, signals, labels


def auto_choose(settings: Any, kind_of: Callable[[str], Any], options_of: Callable[[Any], Any],
                ts: np.ndarray, signals: dict[str, np.ndarray], labels: np.ndarray | None,
                grid: Sequence[Candidate], say: Say | None = None, holdout: float = 0.2) -> AutoChoice:
    sel = select(settings, kind_of, options_of, ts, signals, labels, grid=grid, say=say, holdout=holdout)
    c = sel.chosen.candidate
    return AutoChoice(sel, c.kind, candidate_settings(settings, c, sel.period_s), STAT_SETS[c.stats],
                      None if labels is None else labels == 0)


def table(sel: Selection) -> str:
    """The candidates with their cross-validated figures, the chosen one marked, and why it was chosen."""
    labelled = sel.objective == "labelled"
    head = f"{'':2}{'KIND':12} {'WINDOW':>8} {'HOP':>8} {'STATS':11} {'FAR %':>7} " + (
        f"{'F1':>6}" if labelled else f"{'SYNTH':>6}")
    lines = [f"--auto: {len(sel.outcomes)} candidates, {sel.objective} objective, time-ordered folds on "
             f"{sel.rows} training rows (row period {sel.period_s:g} s)", head]
    for o in sel.outcomes:
        c = o.candidate
        mark = "* " if o is sel.chosen else "  "
        base = f"{mark}{c.kind:12} {o.window_s:>7g}s {o.hop_s:>7g}s {c.stats:11}"
        if not o.feasible:
            lines.append(f"{base} not feasible: {o.reason.split(';')[0]}")
            continue
        fig = o.f1 if labelled else o.detection
        lines.append(f"{base} {o.far or 0.0:7.2f} {fig or 0.0:6.3f}")
    ch = sel.chosen
    lines.append(f"chosen: {ch.candidate.kind}, window {ch.window_s:g} s, hop {ch.hop_s:g} s, statistics "
                 f"{ch.candidate.stats} ({sel.note})")
    return "\n".join(lines)
