"""A shadow run's champion against its challenger, from the insights both stored in the historian.

Windows are paired by (asset, window start). Per role: the alarm rate (alarm windows among its ungated
windows), precision and recall against the engineers' labels (a window is a fault window when it overlaps a
``true_fault``-labelled period; precision = alarm windows that are fault windows / alarm windows, recall =
fault windows in alarm / fault windows), and the detection delay of each labelled fault (first alarm
window's end minus the period's start). Agreement: the share of paired windows where both alarm or neither
does. The same figures by shift, by product and by equipment (the windows' MES context); a labelled fault
counts in the slice of the champion's first window that overlaps it (where it began).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np

from inference.history import LabelledPeriod, read_labels

SLICES = ("shift", "product", "asset")


@dataclass
class RoleRows:
    version: str
    keys: list[tuple[str, int]]  # (asset, window start µs)
    end_us: np.ndarray
    alarm: np.ndarray
    gated: np.ndarray
    context: list[dict[str, Any]]

    @cached_property
    def start_us(self) -> np.ndarray:
        return np.array([k[1] for k in self.keys], dtype=np.int64)

    @cached_property
    def assets(self) -> np.ndarray:
        return np.array([k[0] for k in self.keys], dtype=object)


def read_roles(dsn: str, model: str, since: datetime, until: datetime) -> dict[str, RoleRows]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT coalesce(role, 'champion'), model_version, asset::text, window_start, window_end, "
            "severity, gated, coalesce(context, '{}'::jsonb) FROM insights "
            "WHERE model = %s AND ts >= %s AND ts < %s ORDER BY asset, window_start",
            (model, since, until),
        ).fetchall()
    out: dict[str, RoleRows] = {}
    grouped: dict[str, list[Any]] = {}
    for r in rows:
        grouped.setdefault(r[0], []).append(r)
    for role, rs in grouped.items():
        versions = sorted({r[1] for r in rs})
        out[role] = RoleRows(
            ", ".join(versions),
            [(r[2], int(r[3].timestamp() * 1e6)) for r in rs],
            np.array([int(r[4].timestamp() * 1e6) for r in rs], dtype=np.int64),
            np.array([r[5] == "alarm" for r in rs], dtype=bool),
            np.array([bool(r[6]) for r in rs], dtype=bool),
            [r[7] if isinstance(r[7], dict) else {} for r in rs],
        )
    return out


def _overlaps(rows: RoleRows, periods: Sequence[LabelledPeriod]) -> list[np.ndarray]:
    """Per ``true_fault`` period, in order: which of ``rows``' windows overlap it (same equipment)."""
    return [(rows.assets == p.asset) & (rows.start_us < p.end_us) & (rows.end_us > p.start_us)
            for p in periods if p.action == "true_fault"]


def _fault_mask(rows: RoleRows, periods: Sequence[LabelledPeriod]) -> np.ndarray:
    mask = np.zeros(len(rows.keys), dtype=bool)
    for overlap in _overlaps(rows, periods):
        mask |= overlap
    return mask


def _figures(alarm: np.ndarray, fault: np.ndarray) -> dict[str, Any]:
    n_alarm, n_fault = int(alarm.sum()), int(fault.sum())
    return {
        "windows": int(alarm.size),
        "alarm_rate": None if alarm.size == 0 else float(alarm.mean()),
        "precision": None if n_alarm == 0 else float((alarm & fault).sum() / n_alarm),
        "recall": None if n_fault == 0 else float((alarm & fault).sum() / n_fault),
    }


def _delays(rows: RoleRows, periods: Sequence[LabelledPeriod]) -> list[float | None]:
    out: list[float | None] = []
    faults = [p for p in periods if p.action == "true_fault"]
    for p, overlap in zip(faults, _overlaps(rows, periods), strict=True):
        hit = rows.alarm & ~rows.gated & overlap
        out.append(float((rows.end_us[hit].min() - p.start_us) / 1e6) if hit.any() else None)
    return out


def _first_windows(rows: RoleRows, periods: Sequence[LabelledPeriod]) -> list[int | None]:
    """Per ``true_fault`` period (in ``_delays``' order), the index of its first overlapping window."""
    out: list[int | None] = []
    for overlap in _overlaps(rows, periods):
        hit = np.flatnonzero(overlap)
        out.append(int(hit[np.argmin(rows.start_us[hit])]) if hit.size else None)
    return out


def _slice_value(rows: RoleRows, i: int, key: str) -> str | None:
    if key == "asset":
        return rows.keys[i][0]
    v = rows.context[i].get(key)
    return None if v is None else str(v)


def compare(dsn: str, model: str, since: datetime, until: datetime) -> dict[str, Any]:
    roles = read_roles(dsn, model, since, until)
    if "champion" not in roles or "challenger" not in roles:
        have = ", ".join(sorted(roles)) or "no insights"
        raise ValueError(
            f"model {model} has {have} between {since.isoformat()} and {until.isoformat()}: a comparison "
            f"needs a challenger in shadow (edge models alias {model} VERSION challenger --reason ...)"
        )
    champ, chall = roles["champion"], roles["challenger"]
    assets = sorted({k[0] for k in champ.keys} | {k[0] for k in chall.keys})
    periods = read_labels(dsn, assets, since, until)
    index = {k: i for i, k in enumerate(chall.keys)}
    pairs = [(i, index[k]) for i, k in enumerate(champ.keys) if k in index]
    ci = np.array([p[0] for p in pairs], dtype=np.int64)
    hi = np.array([p[1] for p in pairs], dtype=np.int64)
    ok = ~champ.gated[ci] & ~chall.gated[hi]
    a_c, a_h = champ.alarm[ci][ok], chall.alarm[hi][ok]
    fault = _fault_mask(champ, periods)[ci][ok]
    kept = ci[ok]

    def block(sel: np.ndarray) -> dict[str, Any]:
        return {
            "windows": int(sel.sum()),
            "agreement": None if not sel.any() else float((a_c[sel] == a_h[sel]).mean()),
            "champion": _figures(a_c[sel], fault[sel]),
            "challenger": _figures(a_h[sel], fault[sel]),
        }

    delays = {"champion": _delays(champ, periods), "challenger": _delays(chall, periods)}
    res: dict[str, Any] = {
        "model": model, "since": since.isoformat(), "until": until.isoformat(),
        "champion_version": champ.version, "challenger_version": chall.version,
        "paired_windows": len(pairs), "true_fault_periods": sum(p.action == "true_fault" for p in periods),
        **block(np.ones(len(kept), dtype=bool)),
        "detection_delay_s": delays,
        "slices": {},
    }
    first = _first_windows(champ, periods)
    for key in SLICES:
        values = np.array([_slice_value(champ, int(i), key) for i in kept], dtype=object)
        fault_at = [None if i is None else _slice_value(champ, i, key) for i in first]
        seen = sorted({str(v) for v in values if v is not None})
        res["slices"][key] = {
            v: {**block(values == v), "detection_delay_s": {
                role: [d for d, at in zip(ds, fault_at, strict=True) if at == v]
                for role, ds in delays.items()}}
            for v in seen
        }
    return res
