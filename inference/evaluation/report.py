"""Figures over all files (the SKAB leaderboard sums the confusion matrices; NAB normalises the summed raw
scores with the corpus' window count), the terminal table, and the JSON document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inference.evaluation import nab, points
from inference.evaluation.evaluate import FileResult


def overall(results: Sequence[FileResult]) -> dict[str, Any]:
    total = points.Confusion()
    for r in results:
        c = r.summary["confusion"]
        total = total + points.Confusion(c["TP"], c["TN"], c["FP"], c["FN"])
    ev = [r.summary["events"] for r in results]
    delays = [d for e in ev for d in e["delays_s"] if d is not None]
    nab_out: dict[str, Any] = {}
    for prof in nab.PROFILES:
        raw = sum(r.summary["nab"][prof]["score"] for r in results)
        wins = sum(r.summary["nab"][prof]["windows"] for r in results)
        nab_out[prof] = {"raw": raw, "windows": wins, "normalized": nab.normalize(raw, wins, prof)}
    labels: dict[str, dict[str, float | int]] = {}
    for r in results:
        for k, v in r.summary["per_label"].items():
            d = labels.setdefault(k, {"points": 0, "flagged": 0, "events": 0, "events_detected": 0})
            for f in ("points", "flagged", "events", "events_detected"):
                d[f] = int(d[f]) + int(v[f])
    for d in labels.values():
        d["rate"] = int(d["flagged"]) / int(d["points"]) if d["points"] else 0.0
    return {
        "files": len(results),
        "points": sum(r.summary["points"] for r in results),
        "pointwise": total.figures(),
        "events": sum(e["events"] for e in ev),
        "events_detected": sum(e["detected"] for e in ev),
        "false_events": sum(e["false_events"] for e in ev),
        "mean_delay_s": float(np.mean(delays)) if delays else None,
        "nab": nab_out,
        "per_label": labels,
        "seconds": sum(r.summary["seconds"] for r in results),
        "levels": levels_overall(results),
    }


def levels_overall(results: Sequence[FileResult]) -> dict[str, Any] | None:
    """With ``--levels auto|none``: in how many files' models each signal was made level-free."""
    decisions = [r.summary.get("levels") for r in results]
    if not any(decisions):
        return None
    free: dict[str, int] = {}
    for d in decisions:
        for s, v in (d or {}).get("signals", {}).items():
            free[s] = free.get(s, 0) + (0 if v["level"] else 1)
    modes = sorted({d["mode"] for d in decisions if d})
    return {"mode": ",".join(modes), "models": sum(1 for d in decisions if d), "level_free": free}


def document(results: Sequence[FileResult], config: dict[str, Any]) -> dict[str, Any]:
    """Everything, per file (with the per-window series) and overall."""
    files = []
    for r in results:
        d = dict(r.summary)
        d["series"] = {
            "window_start_us": r.win_start_us.tolist(),
            "window_end_us": r.win_end_us.tolist(),
            "score": [None if not np.isfinite(s) else float(s) for s in r.scores],
            "level": r.levels.tolist(),
            "gated": r.gated.tolist(),
        }
        files.append(d)
    return {"config": config, "files": files, "overall": overall(results)}


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def table(results: Sequence[FileResult], tot: dict[str, Any]) -> str:
    head = f"{'FILE':34} {'SCORED':>6} {'WIN':>5} {'GATED':>5} {'ALARM%':>6} {'F1':>5} {'FAR%':>6} " \
           f"{'MAR%':>6} {'EVENTS':>7} {'DELAY s':>8} {'NAB':>7}"
    lines = [head]
    for r in results:
        s = r.summary
        pw, ev = s["pointwise"], s["events"]
        name = _short(s["file"])
        lines.append(
            f"{name:34} {s['points']:6d} {s['windows']:5d} {s['gated_windows']:5d} "
            f"{100 * s['alarm_windows'] / max(1, s['windows']):6.2f} {pw['F1']:5.2f} "
            f"{pw['FAR']:6.2f} {pw['MAR']:6.2f} {ev['detected']:3d}/{ev['events']:<3d} "
            f"{_fmt(ev['mean_delay_s'], '8.1f'):>8} {s['nab']['standard']['score']:7.3f}"
        )
    pw = tot["pointwise"]
    lines.append(
        f"{'ALL (' + str(tot['files']) + ' files)':34} {tot['points']:6d} {'':5} {'':5} {'':6} "
        f"{pw['F1']:5.2f} "
        f"{pw['FAR']:6.2f} {pw['MAR']:6.2f} {tot['events_detected']:3d}/{tot['events']:<3d} "
        f"{_fmt(tot['mean_delay_s'], '8.1f'):>8} {tot['nab']['standard']['normalized']:7.2f}"
    )
    n = tot["nab"]
    lines.append(
        "NAB normalised (ALL row): standard {:.2f}, reward_low_FP_rate {:.2f}, reward_low_FN_rate {:.2f} "
        "over {} windows; per file: raw standard score; ALARM%: share of the file's windows in alarm".format(
            n["standard"]["normalized"], n["reward_low_FP_rate"]["normalized"],
            n["reward_low_FN_rate"]["normalized"], n["standard"]["windows"])
    )
    lv = tot.get("levels")
    if lv:
        lines.append(f"levels {lv['mode']}: level-free signal in how many of {lv['models']} models: " + (
            ", ".join(f"{s} {n}" for s, n in lv["level_free"].items() if n) or "none"))
    labels = {k: v for k, v in tot["per_label"].items() if k != "0"}
    if len(labels) > 1:
        lines.append("per label: " + ", ".join(
            f"{k}: {float(v['rate']):.1%} of {v['points']} points, "
            f"{v['events_detected']}/{v['events']} events"
            for k, v in sorted(labels.items(), key=lambda kv: float(kv[0]))))
    return "\n".join(lines)


def _short(path: str, width: int = 34) -> str:
    parts = path.split("/")
    s = "/".join(parts[-2:])
    return s if len(s) <= width else "…" + s[-(width - 1):]
