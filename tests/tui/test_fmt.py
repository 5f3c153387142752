"""Number formatting in the TUI: counts and large values as plain digits, never an exponent."""

from __future__ import annotations

import pytest

from tui.screens.health import metrics_text
from tui.widgets.fmt import num


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (20000, 0, "20000"),
        (20000.0, 0, "20000"),
        (20000.0, 1, "20000"),
        (123456789, 3, "123456789"),
        (-15000.4, 1, "-15000"),
        (4800.0, 0, "4800"),
        (16.666, 1, "16.7"),
        (2.5, 3, "2.5"),
        (3.0, 3, "3"),
        (0.0, 2, "0"),
        (0.00001, 3, "1e-05"),
        (None, 3, "-"),
        (float("nan"), 3, "nan"),
    ],
)
def test_num(value: float | None, digits: int, text: str) -> None:
    assert num(value, digits) == text


def test_health_metrics_show_counts_in_plain_digits() -> None:
    snap = {"counters": {"historian": {"committed": 20000, "rejected": {"bad_payload": 12000.0}}},
            "gauges": {"spool_rows": 50000.0}}
    text = str(metrics_text(snap))
    assert "committed 20000" in text and "rejected 12000 (bad_payload 12000)" in text
    assert "spool_rows" in text and "50000" in text
    assert "e+" not in text
