"""Windows counted in rows, for a set whose files are sampled at different rates (NAB: one file a value
every 5 minutes, another every hour): one configuration in rows gives each file the windows in seconds of
its own row period, the grid at one cell per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inference.evaluation.table import LabelledTable, TableError


def row_period_s(table: LabelledTable) -> float:
    """The file's typical row spacing: the median of its positive time steps, in seconds."""
    steps = np.diff(table.ts_us)
    steps = steps[steps > 0]
    if not len(steps):
        raise TableError(
            f"{table.path}: fewer than two distinct timestamps; --window-rows needs a time step")
    return float(np.median(steps)) / 1e6


def settings_in_rows(settings: Any, table: LabelledTable, window_rows: int, hop_rows: int) -> Any:
    """``settings`` with window, hop and grid set from ``window_rows`` / ``hop_rows`` of this file's rows;
    a value is held on the grid for one row period (one missing row is bridged, a longer gap is not)."""
    period = row_period_s(table)
    return settings.model_copy(update={
        "window_s": window_rows * period,
        "hop_s": hop_rows * period,
        "grid_hz": 1.0 / period,
        "max_hold_s": period,
    })
