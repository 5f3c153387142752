"""``inference.auto_select`` on real SKAB rows: time-ordered folds, the synthetic faults of the unlabelled
objective, the choice rule, and the error when no candidate is feasible."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import auto_select as a
from inference.cross_calibration import TrainingDataTooSmall

FREE = Path("/work/shared/data/skab/anomaly-free/anomaly-free.csv")
needs_skab = pytest.mark.skipif(not FREE.exists(), reason=f"SKAB data not found at {FREE}")


def _rows(n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from inference.training_set import read_table

    return read_table(FREE, rows=(0, n))


def _settings() -> Any:
    from inference.settings import InferenceSettings

    return InferenceSettings.model_validate({})


def _kind(name: str) -> Any:
    from edge.app.plugins import model_kind

    return model_kind(name)


def _options(kind: Any) -> Any:
    return kind.settings.model_validate({})


def test_fold_edges_are_contiguous_and_time_ordered() -> None:
    edges = a.fold_edges(1000, 3)
    assert edges[0] == 0 and edges[-1] == 1000 and len(edges) == 5
    assert all(lo < hi for lo, hi in itertools.pairwise(edges))


def test_synthetic_faults_start_at_the_onset() -> None:
    rng = np.random.default_rng(0)
    sig = {"p": rng.normal(5.0, 2.0, 100), "flat": np.ones(100)}
    faults = dict(a.synthetic_faults(sig, {"p": 2.0, "flat": 0.0}, 40))
    assert set(faults) == {"p step", "p gain"}  # a constant signal gets none
    step, gain = faults["p step"]["p"], faults["p gain"]["p"]
    assert np.array_equal(step[:40], sig["p"][:40]) and np.array_equal(gain[:40], sig["p"][:40])
    assert np.allclose(step[40:] - sig["p"][40:], a.STEP_SD * 2.0)
    assert np.std(gain[40:]) == pytest.approx(a.GAIN * np.std(sig["p"][40:]))
    assert np.array_equal(faults["p step"]["flat"], sig["flat"])


def _outcome(kind: str, far: float | None, detection: float | None = None, f1: float | None = None,
             feasible: bool = True) -> a.Outcome:
    return a.Outcome(a.Candidate(kind, 10, 2), 10.0, 2.0, feasible, "" if feasible else "too small", far,
                     detection, f1)


def test_choice_rule() -> None:
    loud = _outcome("loud", 20.0, 0.9)
    quiet = _outcome("quiet", 1.0, 0.3)
    sharp = _outcome("sharp", 4.0, 0.6)
    assert a.choose([loud, quiet, sharp], False)[0] is sharp  # most sensitive within the FAR bound
    assert a.choose([loud, quiet], False, max_far=0.5)[0] is quiet  # none within: the lowest FAR
    tie = _outcome("tie", 2.0, 0.6)
    assert a.choose([sharp, tie], False)[0] is tie  # a tie goes to the lower FAR
    lab = [_outcome("x", 3.0, f1=0.7), _outcome("y", 9.0, f1=0.8), _outcome("z", 1.0, f1=0.8)]
    assert a.choose(lab, True)[0] is lab[2]
    with pytest.raises(TrainingDataTooSmall, match="every --auto candidate"):
        a.choose([_outcome("n", None, feasible=False)], False)


@needs_skab
def test_select_fits_on_earlier_rows_and_scores_later_ones() -> None:
    ts, sig = _rows(2600)
    grid = [a.Candidate("pca", 10, 2, "level_free"), a.Candidate("pca", 20, 10, "all")]
    sel = a.select(_settings(), _kind, _options, ts, sig, grid=grid)
    ok, small = sel.outcomes
    assert ok.feasible and not small.feasible and "training data too small" in small.reason
    assert sel.chosen is ok and sel.rows == 2600 and sel.period_s == pytest.approx(1.0)
    edges = a.fold_edges(2600)
    assert [f["rows"] for f in ok.folds] == [[edges[i], edges[i + 1]] for i in range(1, a.FOLDS + 1)]
    assert [f["fit_rows"] for f in ok.folds] == edges[1:-1]
    assert ok.far is not None and 0 <= ok.far <= 100
    # the synthetic faults are seen (a model that flags them no more than normal running would be blind)
    assert ok.detection is not None and ok.detection > ok.far / 100
    doc = sel.manifest()
    stats = list(a.STAT_SETS["level_free"])
    assert doc["chosen"] == {"kind": "pca", "window_s": 10.0, "hop_s": 2.0, "stats": stats}
    assert doc["chosen_cv"]["folds"] == ok.folds


@needs_skab
def test_select_refuses_a_training_part_too_small_for_every_candidate() -> None:
    ts, sig = _rows(400)
    with pytest.raises(TrainingDataTooSmall, match=r"too small for every --auto candidate \(2\)"):
        a.select(_settings(), _kind, _options, ts, sig,
                 grid=[a.Candidate("pca", 10, 2), a.Candidate("knn", 5, 1)])
