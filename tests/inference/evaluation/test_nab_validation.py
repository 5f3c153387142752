"""The NAB scorer against NAB's own stored results (numenta/NAB ``results/``): the per-file scores and counts
of ``machine_temperature_system_failure`` recomputed from the stored per-row anomaly scores at the stored
thresholds, for numenta and windowedGaussian and the three profiles, and the stored totals normalised into
``final_results.json``. Port of ``bench/quality/validate_nab.py``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from inference.evaluation import nab

NAB = Path("/work/shared/data/nab")
FILE = "realKnownCause/machine_temperature_system_failure.csv"
pytestmark = pytest.mark.skipif(not (NAB / "results").is_dir(), reason=f"NAB data not found at {NAB}")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
@pytest.mark.parametrize("profile", list(nab.PROFILES))
def test_recomputes_nabs_stored_per_file_score(detector: str, profile: str) -> None:
    wins = json.loads((NAB / "labels/combined_windows.json").read_text())
    rows = _rows(NAB / f"results/{detector}/{detector}_machine_temperature_system_failure.csv")
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    windows = nab.window_indices([r["timestamp"] for r in rows], wins[FILE])
    ref = {r["File"]: r for r in _rows(NAB / f"results/{detector}/{detector}_{profile}_scores.csv")}
    stored = ref[FILE]
    out = nab.score_file(scores >= float(stored["Threshold"]), windows, profile)
    assert abs(out["score"] - float(stored["Score"])) < 1e-9
    for k in ("TP", "TN", "FP", "FN", "Total_Count"):
        assert out[k] == int(stored[k]), k
    # the stored totals, normalised over the corpus' windows, are NAB's final results
    final = json.loads((NAB / "results/final_results.json").read_text())
    n_windows = sum(len(v) for v in wins.values())
    assert nab.normalize(float(ref[""]["Score"]), n_windows, profile) == pytest.approx(
        final[detector][profile], abs=1e-9)
