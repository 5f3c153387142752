"""Event-wise figures: a labelled span is detected when a flagged point lies in it (optionally widened by a
tolerance); its delay is the distance from the span's start to the first such point. Per-label rates for
label columns holding several fault classes."""

from __future__ import annotations

from typing import Any

import numpy as np


def label_events(labels: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of one non-zero label value as (start, end) index pairs, end exclusive."""
    y = np.asarray(labels)
    if y.size == 0:
        return []
    nz = y != 0
    change = np.ones(y.size, dtype=bool)
    change[1:] = (y[1:] != y[:-1]) | (nz[1:] != nz[:-1])
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], y.size)
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if nz[s]]


def event_detection(
    labels: np.ndarray, pred: np.ndarray, ts_us: np.ndarray | None = None, tolerance: int = 0
) -> dict[str, Any]:
    """Events, detected ones, delays in points (and seconds given ``ts_us``), and false events (runs of
    flagged points that overlap no span)."""
    p = np.asarray(pred).astype(bool)
    n = p.shape[0]
    events = label_events(labels)
    detected: list[bool] = []
    delays: list[int | None] = []
    delays_s: list[float | None] = []
    covered = np.zeros(n, dtype=bool)
    for s, e in events:
        lo, hi = max(0, s - tolerance), min(n, e + tolerance)
        covered[lo:hi] = True
        idx = np.flatnonzero(p[lo:hi])
        detected.append(bool(idx.size))
        first = int(lo + idx[0]) if idx.size else None
        delays.append(None if first is None else first - s)
        delays_s.append(None if first is None or ts_us is None else float(ts_us[first] - ts_us[s]) / 1e6)
    false_events = sum(1 for s, e in label_events(p.astype(np.int8)) if not covered[s:e].any())
    found = [d for d in delays if d is not None]
    found_s = [d for d in delays_s if d is not None]
    return {
        "events": len(events),
        "detected": int(sum(detected)),
        "spans": [[s, e] for s, e in events],
        "detected_each": detected,
        "delays": delays,
        "delays_s": delays_s,
        "mean_delay": float(np.mean(found)) if found else None,
        "mean_delay_s": float(np.mean(found_s)) if found_s else None,
        "false_events": false_events,
    }


def per_label(labels: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, float | int]]:
    """Per label value: points, flagged points and their share (for 0: the false alarm share), events and
    detected events."""
    y = np.asarray(labels)
    p = np.asarray(pred).astype(bool)
    out: dict[str, dict[str, float | int]] = {}
    spans = label_events(y)
    for v in np.unique(y).tolist():
        m = y == v
        n = int(m.sum())
        flagged = int((p & m).sum())
        ev = [(s, e) for s, e in spans if y[s] == v]
        out[_key(v)] = {
            "points": n,
            "flagged": flagged,
            "rate": flagged / n if n else 0.0,
            "events": len(ev),
            "events_detected": sum(1 for s, e in ev if p[s:e].any()),
        }
    return out


def _key(v: Any) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() else str(v)
