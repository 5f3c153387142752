"""One labelled file through the live pipeline's code, in event time: quality gate (injected by the caller,
``ingest`` is another area), windower, features, the model's runtime, severity with hysteresis and gating;
then the point-wise, event-wise, NAB and per-label figures of its scored part.

Model source (``ModelSource``): a given package (a registry model, or one trained once on a separate
normal file), or train-per-file on the file's first ``train_rows`` rows / ``train_fraction`` (the rows
before that point are not scored; windows reaching back into them are scored, their points are not).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edge.core.datamodel import WINDOW_MISSING_FEATURE
from inference.evaluation import adapter, events, nab, points
from inference.evaluation.table import LabelledTable, TableError
from inference.packages import ModelPackage

ASSET = "evaluate"
# (samples) -> (kept samples with the soft quality flags set, counts of what the gate found)
Gate = Callable[[pa.RecordBatch], tuple[pa.RecordBatch, dict[str, int]]]
RuntimeFactory = Callable[[Any, ModelPackage], Any]


@dataclass
class ModelSource:
    package: ModelPackage | None = None  # a fixed model for every file
    kind: Any = None  # train per file: the model kind and its options
    options: Any = None
    train_rows: int | None = None
    train_fraction: float | None = None
    holdout: float = 0.2
    stats: tuple[str, ...] = ()  # features of these statistics only (empty: every feature)
    levels: str | None = None  # which signals keep their level statistics (None: the current default)

    def split_row(self, n: int) -> int:
        if self.package is not None:
            return 0
        if self.train_rows is not None:
            return min(n, self.train_rows)
        return int(np.floor(n * float(self.train_fraction or 0.0)))


@dataclass
class FileResult:
    path: str
    summary: dict[str, Any]
    ts_us: np.ndarray
    labels: np.ndarray
    flags: np.ndarray  # per point: covered by an alarm window
    scored: np.ndarray  # per point: counted in the figures
    win_start_us: np.ndarray
    win_end_us: np.ndarray
    scores: np.ndarray
    levels: np.ndarray
    gated: np.ndarray
    threshold: float
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate_file(
    table: LabelledTable,
    source: ModelSource,
    settings: Any,
    spec: Any,
    make_runtime: RuntimeFactory,
    gate: Gate | None = None,
) -> FileResult:
    t0 = time.perf_counter()
    batch = adapter.samples(table.ts_us, table.signals, ASSET)
    quality: dict[str, int] = {}
    if gate is not None:
        batch, quality = gate(batch)
    split = source.split_row(table.n)
    timing: dict[str, float] = {}
    if source.package is None:
        if split <= 0 or split >= table.n:
            raise TableError(f"{table.path}: the training part ({split} of {table.n} rows) leaves nothing to "
                             "train on or nothing to score; check --train-rows / --train-fraction")
        split_us = int(table.ts_us[split])
        ts_col = batch.column("ts").cast(pa.int64())
        train = batch.filter(pc.less(ts_col, pa.scalar(split_us, pa.int64())))
        try:
            pkg = adapter.fit_package(source.kind, source.options, [train], spec, settings,
                                      name=f"eval-{source.kind.name}", source=table.path.name,
                                      holdout=source.holdout, stats=source.stats,
                                      levels=source.levels)
        except ValueError as exc:
            raise TableError(
                f"{table.path}: training on its first {split} rows failed: {exc} (windows of "
                f"{spec.window_s:g} s every {spec.hop_s:g} s); give more training rows (--train-rows / "
                "--train-fraction), a shorter --hop-s or --window-s (--hop-rows / --window-rows)") from None
        timing["train_s"] = time.perf_counter() - t0
    else:
        pkg = source.package
    runtime = make_runtime(settings, pkg)
    t1 = time.perf_counter()
    f = adapter.featurize([batch], spec, settings)
    x, missing = adapter.model_inputs(f, pkg.features)
    if len(x):
        out = runtime.infer(x)
        outs = pkg.output_names
        scores = np.asarray(out[outs.get("score", "score")], dtype=np.float64).reshape(-1)
    else:
        scores = np.zeros(0)
    wflags = np.where(missing, f.flags | WINDOW_MISSING_FEATURE, f.flags)
    gated = adapter.gating_mask(wflags)
    from inference.severity import SeverityTracker

    tracker = SeverityTracker(settings.warning_ratio, settings.clear_ratio, settings.hysteresis_windows)
    levels = tracker.update_many(pkg.name, [ASSET] * len(scores), scores, pkg.threshold, gated)
    alarm = levels == 2
    lo, hi = points.window_point_span(table.ts_us, f.start_us, f.end_us)
    flags = points.alarm_points(table.n, lo, hi, alarm)
    scored = np.zeros(table.n, dtype=bool)
    scored[split:] = True
    timing["score_s"] = time.perf_counter() - t1
    summary = summarize(table, flags, scored)
    # the training part's gated windows: a gate rule that gates much of normal running does not fit the data
    in_train = f.end_us <= table.ts_us[split] if 0 < split < table.n else np.zeros(len(gated), dtype=bool)
    summary.update(
        file=str(table.path),
        rows=table.n,
        train_rows=split,
        windows=len(scores),
        gated_windows=int(gated.sum()),
        train_gated_share=float(gated[in_train].mean()) if in_train.any() else 0.0,
        alarm_windows=int(alarm.sum()),
        warning_windows=int((levels == 1).sum()),
        threshold=pkg.threshold,
        model={"name": pkg.name, "version": pkg.version, "kind": pkg.manifest.get("kind"),
               "features": len(pkg.features), "sha256": pkg.sha256},
        quality=quality,
        levels=pkg.manifest.get("levels"),
        notes=table.notes,
        seconds=time.perf_counter() - t0,
        timing=timing,
    )
    return FileResult(str(table.path), summary, table.ts_us, table.labels, flags, scored, f.start_us,
                      f.end_us, scores, levels, gated, pkg.threshold)


def summarize(table: LabelledTable, flags: np.ndarray, scored: np.ndarray) -> dict[str, Any]:
    """Every figure of one file from its per-point alarm flags (only the ``scored`` points count)."""
    y = table.labels[scored]
    p = flags[scored]
    ts = table.ts_us[scored]
    conf = points.Confusion.of(y != 0, p)
    ev = events.event_detection(y, p, ts)
    first = int(np.argmax(scored)) if scored.any() else 0
    # NAB: the whole file (its probationary part is NAB's own), detections = alarm onsets in the scored part
    spans = table.windows
    if spans is None:
        spans = [(s, e - 1) for s, e in events.label_events(table.labels)]
    det = nab.onsets(flags) & scored
    nab_raw = {prof: nab.score_file(det, spans, prof) for prof in nab.PROFILES}
    return {
        "points": int(scored.sum()),
        "first_scored_row": first,
        "confusion": {"TP": conf.tp, "TN": conf.tn, "FP": conf.fp, "FN": conf.fn},
        "pointwise": conf.figures(),
        "events": ev,
        "per_label": events.per_label(y, p),
        "nab": {prof: {"score": r["score"], "windows": r["windows"], "detections": int(det.sum())}
                for prof, r in nab_raw.items()},
    }
