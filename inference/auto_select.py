"""Choose window, hop, model kind and feature statistics by time-ordered cross-validation on the training
part.

The training rows are cut into ``folds + 1`` contiguous segments; fold i fits on every row before segment
i + 1 (the earlier running) and replays segment i + 1 (the later running) through the evaluation's code
(``inference.evaluation.evaluate``: windower, features, onnxruntime, severity hysteresis), so a candidate is
scored on running it has not seen, as it will be in the plant. Nothing after the training part is read.

Two objectives, by what the user gives:

* unlabelled (normal running): the point-wise false-alarm rate of the later segments (FAR, %) and a
  separation proxy, the share of faulty points flagged on copies of the start of those segments with a
  synthetic fault from their middle on (each signal in turn stepped by ``STEP_SD`` fit-part standard
  deviations, or its deviations from its mean scaled by ``GAIN``); among the candidates whose FAR is
  within ``max_far`` the most sensitive wins, a tie goes to the lower FAR; when none is within it, the
  lowest FAR wins;
* labelled (a label column of the training file, 0 = normal): point-wise F1 over the later segments (the
  fits see only their normal rows); a tie goes to the lower FAR.

A candidate is feasible only when the whole training part gives the windows ``edge models train`` needs
(``cross_calibration.check_training_size``) and every fold can be fitted; ``TrainingDataTooSmall`` when none
is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.cross_calibration import TrainingDataTooSmall, check_training_size
from inference.evaluation import adapter
from inference.evaluation.evaluate import ModelSource, evaluate_file
from inference.evaluation.table import LabelledTable
from inference.kernels import STATS
from inference.levels import LEVEL_STATS

KINDS = ("pca", "knn")
# (window rows, hop rows): short to long windows, each at two hops
WINDOWS = ((5, 1), (10, 2), (10, 5), (20, 4), (20, 10))
# every statistic, or the ones a slow drift of a signal's level does not move (as bench select_skab.py)
STAT_SETS: dict[str, tuple[str, ...]] = {
    "all": (), "level_free": tuple(s for s in STATS if s not in LEVEL_STATS)}
FOLDS = 3
MAX_FAR = 5.0  # %, point-wise, of the later normal running
STEP_SD = 3.0
GAIN = 3.0
SYNTH_ROWS = 200  # rows of each synthetic fault (after as many normal rows): bounds the replay time

Say = Callable[[str], None]
KindOf = Callable[[str], Any]


@dataclass(frozen=True)
class Candidate:
    kind: str
    window_rows: int
    hop_rows: int
    stats: str = "all"

    def label(self) -> str:
        return f"{self.kind} w{self.window_rows} h{self.hop_rows} {self.stats}"


@dataclass
class Outcome:
    candidate: Candidate
    window_s: float
    hop_s: float
    feasible: bool = True
    reason: str = ""
    far: float | None = None  # point-wise FAR (%) of the later segments
    detection: float | None = None  # unlabelled: share of synthetic-fault points flagged
    f1: float | None = None  # labelled: point-wise F1 of the later segments
    folds: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {"kind": c.kind, "window_rows": c.window_rows, "hop_rows": c.hop_rows, "stats": c.stats,
                "window_s": self.window_s, "hop_s": self.hop_s, "feasible": self.feasible,
                "reason": self.reason, "far": self.far, "detection": self.detection, "f1": self.f1,
                "folds": self.folds}


@dataclass
class Selection:
    objective: str  # "unlabelled" or "labelled"
    outcomes: list[Outcome]
    chosen: Outcome
    rows: int
    period_s: float
    note: str = ""

    def manifest(self) -> dict[str, Any]:
        """What the package's manifest records of the choice (``auto_select``)."""
        c = self.chosen.candidate
        return {"method": f"time-ordered cross-validation on the training part ({FOLDS} folds, fit on "
                          "earlier rows, scored on later rows)",
                "objective": self.objective, "max_far": MAX_FAR, "training_rows": self.rows,
                "row_period_s": self.period_s, "note": self.note,
                "chosen": {"kind": c.kind, "window_s": self.chosen.window_s, "hop_s": self.chosen.hop_s,
                           "stats": list(STAT_SETS[c.stats]) or "all"},
                "chosen_cv": self.chosen.as_dict(),
                "candidates": [o.as_dict() for o in self.outcomes]}


def candidates(kinds: Sequence[str] = KINDS, windows: Sequence[tuple[int, int]] = WINDOWS,
               stat_sets: Sequence[str] = tuple(STAT_SETS)) -> list[Candidate]:
    return [Candidate(k, w, h, s) for k in kinds for w, h in windows for s in stat_sets]


def row_period_s(ts_us: np.ndarray) -> float:
    steps = np.diff(np.asarray(ts_us, dtype=np.int64))
    steps = steps[steps > 0]
    if not len(steps):
        raise ValueError("the training part has fewer than two distinct timestamps")
    return float(np.median(steps)) / 1e6


def candidate_settings(settings: Any, c: Candidate, period_s: float) -> Any:
    """``settings`` with the candidate's window and hop in rows, the grid one cell a row (as
    ``edge models evaluate --window-rows``)."""
    return settings.model_copy(update={"window_s": c.window_rows * period_s, "hop_s": c.hop_rows * period_s,
                                       "grid_hz": 1.0 / period_s, "max_hold_s": period_s})


def fold_edges(n: int, folds: int = FOLDS) -> list[int]:
    return [int(e) for e in np.linspace(0, n, folds + 2).astype(int)]


def _runtime(_settings: Any, pkg: Any) -> Any:
    from inference.runtimes.onnx.runtime import OnnxRuntime

    return OnnxRuntime(pkg.onnx, providers=["CPUExecutionProvider"], intra_op_threads=1, name=pkg.name)


def _table(ts: np.ndarray, signals: dict[str, np.ndarray], labels: np.ndarray, name: str) -> LabelledTable:
    return LabelledTable(Path(name), ts, signals, labels.astype(np.float64))


def synthetic_faults(signals: dict[str, np.ndarray], sd: dict[str, float], onset: int
                     ) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Copies of a segment with one synthetic fault each from row ``onset`` on: a step of ``STEP_SD``
    fit-part standard deviations on one signal, or that signal's deviations from its mean scaled by
    ``GAIN``."""
    out = []
    for name, v in signals.items():
        s = sd.get(name, 0.0)
        if not np.isfinite(s) or s <= 0:
            continue
        step, gain = v.copy(), v.copy()
        step[onset:] += STEP_SD * s
        m = float(np.nanmean(v))
        gain[onset:] = m + GAIN * (v[onset:] - m)
        out.append((f"{name} step", {**signals, name: step}))
        out.append((f"{name} gain", {**signals, name: gain}))
    return out


def _fold(c: Candidate, kind: Any, options: Any, settings: Any, ts: np.ndarray,
          signals: dict[str, np.ndarray], labels: np.ndarray, lo: int, hi: int, labelled: bool
          ) -> tuple[dict[str, int], dict[str, Any]]:
    """Fit on rows [0, lo) (their normal rows), replay rows [lo, hi); (its confusion, its figures)."""
    spec = adapter.spec_of(settings)
    fit_rows = np.arange(lo) if not labelled else np.flatnonzero(labels[:lo] == 0)
    fit_sig = {k: v[fit_rows] for k, v in signals.items()}
    batch = adapter.samples(ts[fit_rows], fit_sig, "auto")
    pkg = adapter.fit_package(kind, options, [batch], spec, settings, name=f"auto-{c.kind}",
                              source="training part", stats=STAT_SETS[c.stats])
    seg = {k: v[lo:hi] for k, v in signals.items()}
    normal = evaluate_file(_table(ts[lo:hi], seg, labels[lo:hi], f"rows {lo}:{hi}"), ModelSource(package=pkg),
                           settings, spec, _runtime)
    fig: dict[str, Any] = {"fit_rows": len(fit_rows), "rows": [lo, hi],
                           "far": normal.summary["pointwise"]["FAR"]}
    if labelled:
        fig["f1"] = normal.summary["pointwise"]["F1"]
    else:
        sd = {k: float(np.nanstd(v)) for k, v in fit_sig.items()}
        n = min(hi - lo, 2 * SYNTH_ROWS)  # a normal run, then the fault: its onset through the hysteresis
        short = {k: v[:n] for k, v in seg.items()}
        y_fault = (np.arange(n) >= n // 2).astype(np.float64)
        shares = []
        for what, sig in synthetic_faults(short, sd, n // 2):
            r = evaluate_file(_table(ts[lo:lo + n], sig, y_fault, what), ModelSource(package=pkg), settings,
                              spec, _runtime)
            shares.append(1.0 - r.summary["pointwise"]["MAR"] / 100.0)
        fig["detection"] = float(np.mean(shares)) if shares else 0.0
    return normal.summary["confusion"], fig


def evaluate_candidate(c: Candidate, kind_of: KindOf, options_of: Callable[[Any], Any], settings: Any,
                       ts: np.ndarray, signals: dict[str, np.ndarray], labels: np.ndarray | None,
                       period_s: float, folds: int = FOLDS, holdout: float = 0.2) -> Outcome:
    """The candidate's cross-validated figures (or why it is not feasible)."""
    from inference.evaluation.points import Confusion

    cs = candidate_settings(settings, c, period_s)
    out = Outcome(c, cs.window_s, cs.hop_s)
    kind = kind_of(c.kind)
    options = options_of(kind)
    labelled = labels is not None
    y = labels if labels is not None else np.zeros(len(ts))
    try:
        n_win, n_feat = training_windows(ts, signals, y, labelled, cs, c)
        check_training_size(round(n_win * (1.0 - holdout)), options.target_far, n_feat, cs.window_s, cs.hop_s)
    except (TrainingDataTooSmall, ValueError) as exc:
        out.feasible, out.reason = False, str(exc)
        return out
    edges = fold_edges(len(ts), folds)
    total = Confusion()
    for i in range(1, folds + 1):
        try:
            conf, fig = _fold(c, kind, options, cs, ts, signals, y, edges[i], edges[i + 1], labelled)
        except ValueError as exc:
            out.feasible, out.reason = False, f"fold {i} (fit on rows 0:{edges[i]}): {exc}"
            return out
        total = total + Confusion(conf["TP"], conf["TN"], conf["FP"], conf["FN"])
        out.folds.append(fig)
    figs = total.figures()
    out.far = float(figs["FAR"])
    if labelled:
        out.f1 = float(figs["F1"])
    else:
        out.detection = float(np.mean([f["detection"] for f in out.folds]))
    return out


def training_windows(ts: np.ndarray, signals: dict[str, np.ndarray], labels: np.ndarray, labelled: bool,
                         settings: Any, c: Candidate) -> tuple[int, int]:
    """(good windows, features) the whole training part gives the candidate, as the final fit sees it."""
    rows = np.flatnonzero(labels == 0) if labelled else np.arange(len(ts))
    f = adapter.featurize([adapter.samples(ts[rows], {k: v[rows] for k, v in signals.items()}, "auto")],
                          adapter.spec_of(settings), settings)
    keep = [i for i, n in enumerate(f.names)
            if not STAT_SETS[c.stats] or n.rpartition("__")[2] in STAT_SETS[c.stats]]
    good = ~adapter.gating_mask(f.flags)
    if len(f.start_us):
        good &= np.isfinite(f.values[:, keep]).all(axis=1)
    return int(good.sum()), len(keep)


def choose(outcomes: Sequence[Outcome], labelled: bool, max_far: float = MAX_FAR) -> tuple[Outcome, str]:
    ok = [o for o in outcomes if o.feasible]
    if not ok:
        if not outcomes:
            raise TrainingDataTooSmall("no --auto candidate to try")
        first = outcomes[0]
        raise TrainingDataTooSmall(f"training part too small for every --auto candidate ({len(outcomes)}); "
                                   f"the first, {first.candidate.label()}: {first.reason}")
    if labelled:
        return max(ok, key=lambda o: (o.f1 or 0.0, -(o.far or 0.0))), "highest cross-validated F1"
    within = [o for o in ok if (o.far or 0.0) <= max_far]
    if within:
        return (max(within, key=lambda o: (o.detection or 0.0, -(o.far or 0.0))),
                f"most synthetic-fault points flagged among FAR <= {max_far:g} %")
    return min(ok, key=lambda o: o.far or 0.0), f"no candidate has FAR <= {max_far:g} %: the lowest FAR"


@contextmanager
def _quiet_sessions() -> Iterator[None]:
    # every fold opens dozens of onnxruntime sessions; their info lines would drown the candidates' figures
    log = logging.getLogger("inference.onnx")
    old = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(old)


def select(settings: Any, kind_of: KindOf, options_of: Callable[[Any], Any], ts: np.ndarray,
           signals: dict[str, np.ndarray], labels: np.ndarray | None = None,
           grid: Sequence[Candidate] | None = None, max_far: float = MAX_FAR, say: Say | None = None,
           folds: int = FOLDS, holdout: float = 0.2) -> Selection:
    """Cross-validate every candidate of ``grid`` on the training rows (``ts``, ``signals``, optional
    ``labels``) and choose one. ``kind_of``: a kind by name; ``options_of``: a kind's training options;
    ``holdout``: the share of windows the final fit holds out (what its size check counts without)."""
    report = say or (lambda _m: None)
    period = row_period_s(ts)
    outcomes = []
    for c in grid or candidates():
        with _quiet_sessions():
            o = evaluate_candidate(c, kind_of, options_of, settings, ts, signals, labels, period, folds,
                                   holdout)
        report(f"{c.label()}: " + (o.reason if not o.feasible else f"FAR {o.far:.2f} %, " + (
            f"F1 {o.f1:.3f}" if labels is not None else f"synthetic faults flagged {o.detection:.1%}")))
        outcomes.append(o)
    chosen, why = choose(outcomes, labels is not None, max_far)
    return Selection("labelled" if labels is not None else "unlabelled", outcomes, chosen, len(ts), period,
                     why)
