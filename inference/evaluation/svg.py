"""The score and threshold of each file over (event) time as an SVG, the labelled spans shaded, alarm
windows marked; written by hand (no plotting dependency). One panel per file, stacked."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

from inference.evaluation.evaluate import FileResult
from inference.evaluation.events import label_events

W, H, LEFT, RIGHT, TOP, GAP = 900, 170, 60, 20, 28, 22


def _panel(r: FileResult, y0: float) -> list[str]:
    out: list[str] = []
    pw = W - LEFT - RIGHT
    ph = H - TOP - GAP
    t_lo, t_hi = float(r.ts_us[0]), float(max(r.ts_us[-1], r.ts_us[0] + 1))
    finite = r.scores[np.isfinite(r.scores)]
    top = float(max(r.threshold * 1.5, np.quantile(finite, 0.99) if finite.size else 1.0, 1e-12))

    def tx(t: float) -> float:
        return LEFT + (t - t_lo) / (t_hi - t_lo) * pw

    def sy(v: float) -> float:
        return y0 + TOP + ph - min(max(v, 0.0), top) / top * ph

    pw_s = r.summary["pointwise"]
    title = (f"{r.path}  F1 {pw_s['F1']:.2f}  FAR {pw_s['FAR']:.1f}%  MAR {pw_s['MAR']:.1f}%  "
             f"events {r.summary['events']['detected']}/{r.summary['events']['events']}")
    out.append(f'<text x="{LEFT}" y="{y0 + 16}" font-size="12">{escape(title)}</text>')
    out.append(f'<rect x="{LEFT}" y="{y0 + TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for s, e in label_events(r.labels):
        x1, x2 = tx(float(r.ts_us[s])), tx(float(r.ts_us[e - 1]))
        out.append(f'<rect x="{x1:.1f}" y="{y0 + TOP}" width="{max(x2 - x1, 1):.1f}" height="{ph}" '
                   'fill="#f4b6b6" fill-opacity="0.6"/>')
    if r.scored.any() and not r.scored.all():
        xs = tx(float(r.ts_us[int(np.argmax(r.scored))]))
        out.append(f'<rect x="{LEFT}" y="{y0 + TOP}" width="{xs - LEFT:.1f}" height="{ph}" fill="#ddd" '
                   'fill-opacity="0.6"/>')
        out.append(f'<text x="{LEFT + 4}" y="{y0 + TOP + 12}" font-size="10" fill="#666">training</text>')
    for s, e in label_events((r.levels == 2).astype(np.int8)):
        x1, x2 = tx(float(r.win_start_us[s])), tx(float(r.win_end_us[e - 1]))
        out.append(f'<rect x="{x1:.1f}" y="{y0 + TOP + ph + 2}" width="{max(x2 - x1, 1):.1f}" height="5" '
                   'fill="#c00"/>')
    mid = (r.win_start_us + r.win_end_us) / 2.0
    pts = " ".join(f"{tx(float(t)):.1f},{sy(float(v)):.1f}" for t, v in zip(mid, r.scores, strict=True)
                   if np.isfinite(v))
    if pts:
        out.append(f'<polyline points="{pts}" fill="none" stroke="#1f4e9c" stroke-width="1"/>')
    yt = sy(r.threshold)
    out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{yt:.1f}" y2="{yt:.1f}" stroke="#c00" '
               'stroke-dasharray="4 3"/>')
    out.append(f'<text x="{LEFT - 4}" y="{yt + 4:.1f}" font-size="10" text-anchor="end">thr</text>')
    out.append(f'<text x="{LEFT - 4}" y="{y0 + TOP + 8}" font-size="10" text-anchor="end">{top:.3g}</text>')
    out.append(f'<text x="{LEFT - 4}" y="{y0 + TOP + ph}" font-size="10" text-anchor="end">0</text>')
    return out


def write_svg(results: Sequence[FileResult], path: Path) -> Path:
    total_h = H * len(results) + 24
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{total_h}" '
            f'viewBox="0 0 {W} {total_h}" font-family="sans-serif">',
            f'<rect width="{W}" height="{total_h}" fill="white"/>',
            f'<text x="{LEFT}" y="{total_h - 8}" font-size="10" fill="#555">'
            'score (blue), threshold (red dashed), '
            'labelled spans (red shade), alarm windows (red bar), training part (grey)</text>']
    for i, r in enumerate(results):
        if r.ts_us.size:
            body.extend(_panel(r, i * H))
    body.append("</svg>")
    Path(path).write_text("\n".join(body) + "\n")
    return Path(path)
