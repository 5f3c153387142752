"""The promotion gate: a model version replayed over a window of its equipment's own history.

The samples come from the historian with their MES context (``inference.history``) and go through the
live path's code, in event time: the windower, the feature kernels, the runtime, the gating mask and the
severity hysteresis (as ``edge models evaluate`` replays a file). Each window is then labelled from the
engineers' labels: inside a ``true_fault`` period, inside a ``false_alarm`` period, or unlabelled.

Figures (gated windows count in none of them: their severity can never rise):

* false-alarm rate (FAR): the share of normal windows (unlabelled or labelled false alarm) in alarm, and the
  same on each of the two kinds apart;
* detection: the share of true-fault periods with at least one window in alarm, and the missed-alarm rate
  (MAR): the share of true-fault windows not in alarm;
* slices: FAR and MAR by shift and by product (the windows' MES context). The gap of a slicing is
  ``max / max(min, floor)`` over its slices with at least ``min_slice_windows`` windows; the floor keeps a
  rate of 0 on one shift from making any alarm on another a gap.

It passes when FAR <= ``max_far``, detection >= ``min_detection`` (when there are true-fault periods) and
every gap < ``max_slice_ratio`` (default 2: alarming twice as often on night shift fails). The result is a
JSON-able dict with ``passed`` and ``reasons``; ``Registry.record_gate`` stores it with the version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from inference.history import LabelledPeriod

SLICE_KEYS = ("shift", "product")
NORMAL, FALSE_ALARM, TRUE_FAULT = 0, 1, 2
RuntimeFactory = Callable[[Any, Any, Any], Any]  # (settings, package, event hook) -> Runtime


@dataclass(frozen=True)
class GateBounds:
    max_far: float = 0.05
    min_detection: float = 0.5
    max_slice_ratio: float = 2.0
    min_slice_windows: int = 20
    far_floor: float = 0.01


@dataclass
class Replay:
    """One version's windows over the history, in window order per asset."""

    assets: list[str]
    start_us: np.ndarray
    end_us: np.ndarray
    contexts: list[dict[str, str | None]]
    scores: np.ndarray
    gated: np.ndarray
    alarm: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def replay(
    pkg: Any, batches: Sequence[pa.RecordBatch], settings: Any, make_runtime: RuntimeFactory
) -> Replay:
    """Score ``batches`` (contextualized samples) with ``pkg`` as the inference stage would."""
    from edge.core.datamodel import WINDOW_MISSING_FEATURE
    from inference.evaluation import adapter
    from inference.features import FeatureExtractor, model_inputs_from_matrix
    from inference.severity import SeverityTracker
    from inference.windows import Windower

    spec = adapter.spec_of(settings)
    win = Windower(spec)
    for b in batches:
        win.add(b)
    windows = win.ready(now_us=2**62)
    n = len(windows)
    assets = [w.asset for w in windows]
    starts = np.fromiter((w.start_us for w in windows), dtype=np.int64, count=n)
    ends = np.fromiter((w.end_us for w in windows), dtype=np.int64, count=n)
    if n == 0:
        z = np.zeros(0)
        return Replay([], starts, ends, [], z, z.astype(bool), z.astype(bool))
    fx = FeatureExtractor(spec.grid_hz, settings.spectral_signals, settings.n_bands)
    names, values, n_valid = fx.matrix(windows)
    flags = np.fromiter((w.flags for w in windows), dtype=np.int64, count=n)
    flags = np.where(n_valid == 0, flags | WINDOW_MISSING_FEATURE, flags)
    x, missing = model_inputs_from_matrix(names, values, pkg.features)
    out = make_runtime(settings, pkg, None).infer(x)
    scores = np.asarray(out[pkg.output_names.get("score", "score")], dtype=np.float64).reshape(-1)
    gated = adapter.gating_mask(np.where(missing, flags | WINDOW_MISSING_FEATURE, flags))
    tracker = SeverityTracker(settings.warning_ratio, settings.clear_ratio, settings.hysteresis_windows)
    levels = tracker.update_many(pkg.name, assets, scores, pkg.threshold, gated)
    return Replay(assets, starts, ends, [w.context for w in windows], scores, gated, levels == 2)


def window_labels(r: Replay, periods: Sequence[LabelledPeriod]) -> np.ndarray:
    """Per window: TRUE_FAULT, FALSE_ALARM (a true fault wins where both overlap) or NORMAL."""
    codes = np.zeros(len(r.assets), dtype=np.int64)
    asset_arr = np.asarray(r.assets, dtype=object)
    for p in periods:
        hit = (asset_arr == p.asset) & (r.start_us < p.end_us) & (r.end_us > p.start_us)
        codes[hit] = np.maximum(codes[hit], TRUE_FAULT if p.action == "true_fault" else FALSE_ALARM)
    return codes


def _rate(mask: np.ndarray, of: np.ndarray) -> float | None:
    n = int(of.sum())
    return None if n == 0 else float((mask & of).sum() / n)


def _slices(r: Replay, codes: np.ndarray, key: str) -> dict[str, dict[str, Any]]:
    values = np.asarray([c.get(key) for c in r.contexts], dtype=object)
    out = {}
    for v in sorted({str(x) for x in values if x is not None}):
        sel = (values == v) & ~r.gated
        normal, fault = sel & (codes != TRUE_FAULT), sel & (codes == TRUE_FAULT)
        out[v] = {
            "windows": int(sel.sum()),
            "normal_windows": int(normal.sum()),
            "fault_windows": int(fault.sum()),
            "far": _rate(r.alarm, normal),
            "mar": _rate(~r.alarm, fault),
        }
    return out


def _gap(slices: dict[str, dict[str, Any]], rate: str, count: str, b: GateBounds) -> dict[str, Any] | None:
    rates = {k: s[rate] for k, s in slices.items() if s[count] >= b.min_slice_windows and s[rate] is not None}
    if len(rates) < 2:
        return None
    hi, lo = max(rates, key=lambda k: rates[k]), min(rates, key=lambda k: rates[k])
    ratio = rates[hi] / max(rates[lo], b.far_floor)
    return {"ratio": ratio, "highest": hi, "lowest": lo, "rates": rates}


def detected_periods(r: Replay, periods: Sequence[LabelledPeriod]) -> tuple[int, int]:
    faults = [p for p in periods if p.action == "true_fault"]
    asset_arr = np.asarray(r.assets, dtype=object)
    hit = sum(
        bool(np.any(r.alarm & (asset_arr == p.asset) & (r.start_us < p.end_us) & (r.end_us > p.start_us)))
        for p in faults
    )
    return hit, len(faults)


def figures(r: Replay, periods: Sequence[LabelledPeriod], bounds: GateBounds) -> dict[str, Any]:
    """The gate's figures and verdict (see the module docstring)."""
    codes = window_labels(r, periods)
    ok = ~r.gated
    normal = ok & (codes != TRUE_FAULT)
    fault = ok & (codes == TRUE_FAULT)
    far = _rate(r.alarm, normal)
    hit, n_faults = detected_periods(r, periods)
    res: dict[str, Any] = {
        "windows": len(r.assets),
        "gated_windows": int(r.gated.sum()),
        "normal_windows": int(normal.sum()),
        "false_alarm_rate": far,
        "false_alarm_rate_unlabelled": _rate(r.alarm, ok & (codes == NORMAL)),
        "false_alarm_rate_on_false_alarm_labels": _rate(r.alarm, ok & (codes == FALSE_ALARM)),
        "true_fault_periods": n_faults,
        "detected_periods": hit,
        "detection_rate": None if n_faults == 0 else hit / n_faults,
        "missed_alarm_rate": _rate(~r.alarm, fault),
        "slices": {k: _slices(r, codes, k) for k in SLICE_KEYS},
        "bounds": asdict(bounds),
    }
    gaps: dict[str, Any] = {}
    reasons = []
    if far is None:
        reasons.append("no normal ungated windows in the period to measure false alarms on")
    elif far > bounds.max_far:
        reasons.append(f"false-alarm rate {far:.2%} > {bounds.max_far:.2%}")
    if n_faults and hit / n_faults < bounds.min_detection:
        reasons.append(f"detected {hit} of {n_faults} true-fault periods (< {bounds.min_detection:.0%})")
    for key, slices in res["slices"].items():
        for rate, count in (("far", "normal_windows"), ("mar", "fault_windows")):
            g = _gap(slices, rate, count, bounds)
            if g is None:
                continue
            gaps[f"{rate}_by_{key}"] = g
            if g["ratio"] >= bounds.max_slice_ratio:
                reasons.append(
                    f"{rate.upper()} by {key}: {g['highest']} {g['rates'][g['highest']]:.2%} is "
                    f"{g['ratio']:.1f}x {g['lowest']} {g['rates'][g['lowest']]:.2%} (>= "
                    f"{bounds.max_slice_ratio:g}x)"
                )
    res["gaps"] = gaps
    res["passed"] = not reasons
    res["reasons"] = reasons
    return res


def run_gate(
    pkg: Any,
    dsn: str,
    assets: Sequence[str],
    since: datetime,
    until: datetime,
    settings: Any,
    make_runtime: RuntimeFactory,
    bounds: GateBounds | None = None,
) -> dict[str, Any]:
    """Replay ``pkg`` over ``assets``' history in [since, until) and judge it."""
    from inference.history import read_labels, read_samples

    if not assets:
        raise ValueError(f"model {pkg.name} v{pkg.version} is not scoped to an equipment: name the "
                         "equipment to replay with --asset PATH")
    batch = read_samples(dsn, assets, since, until)
    periods = read_labels(dsn, assets, since, until)
    res = figures(replay(pkg, [batch], settings, make_runtime), periods, bounds or GateBounds())
    res.update(
        model=pkg.name, version=pkg.version, sha256=pkg.sha256, assets=list(assets),
        since=since.isoformat(), until=until.isoformat(), labelled_periods=len(periods),
        ts=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )
    return res
