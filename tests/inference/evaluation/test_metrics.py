"""Point-wise, event-wise, per-label and NAB figures on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.evaluation import events, nab, points


def test_alarm_points_cover_alarm_windows_only() -> None:
    flags = points.alarm_points(10, np.array([0, 2, 6]), np.array([3, 5, 12]), np.array([True, False, True]))
    assert flags.tolist() == [True, True, True, False, False, False, True, True, True, True]


def test_pointwise_skab_convention() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0, 1, 0, 0, 1, 1, 0, 0])  # TP 2, FP 1, FN 2, TN 3
    f = points.pointwise([y, y], [p, p])  # summed over files: TP 4, FP 2, FN 4, TN 6
    assert (f["TP"], f["FP"], f["FN"], f["TN"]) == (4, 2, 4, 6)
    assert f["F1"] == pytest.approx(4 / (4 + 3))
    assert f["FAR"] == pytest.approx(100 * 2 / 8)
    assert f["MAR"] == pytest.approx(100 * 4 / 8)


def test_events_delay_and_false_events() -> None:
    y = np.array([0, 1, 1, 1, 0, 0, 2, 2, 0, 0])
    p = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 1])
    ts = np.arange(10) * 2_000_000
    ev = events.event_detection(y, p, ts)
    assert ev["spans"] == [[1, 4], [6, 8]]
    assert ev["detected_each"] == [True, False]
    assert ev["delays"] == [2, None] and ev["delays_s"] == [4.0, None]
    assert ev["false_events"] == 2  # rows 0 and 9
    lab = events.per_label(y, p)
    assert lab["1"] == {"points": 3, "flagged": 1, "rate": 1 / 3, "events": 1, "events_detected": 1}
    assert lab["2"]["rate"] == 0 and lab["0"]["flagged"] == 2


def test_nab_hand_case() -> None:
    n = 100  # probation: 15 rows
    win = [(40, 49)]
    det = np.zeros(n, dtype=bool)
    det[[10, 44, 80]] = True  # row 10 in the probation (ignored), 44 in the window, 80 after it
    out = nab.score_file(det, win, "standard")
    s = lambda x: 2 / (1 + math.exp(5 * x)) - 1  # noqa: E731
    tp = s(-(49 - 44 + 1) / 10) / s(-1)
    fp = 0.11 * s(abs(49 - 80) / 9)  # 3.4 window widths after: -1 (clipped)
    assert out["score"] == pytest.approx(tp + fp)
    assert fp == pytest.approx(-0.11)
    assert (out["TP"], out["FP"]) == (1, 1)
    none = nab.score_file(np.zeros(n, dtype=bool), win, "reward_low_FN_rate")
    assert none["score"] == -2.0
    assert nab.normalize(tp + fp, 1) == pytest.approx(100 * (tp + fp + 1) / 2)
    assert nab.onsets(np.array([0, 1, 1, 0, 1])).tolist() == [False, True, False, False, True]
