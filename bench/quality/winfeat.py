"""Window features, numpy version of ``inference/kernels.py`` definitions (same names, same formulas), for
gridded data already aligned (rows = grid cells, columns = signals). Windows start every ``hop`` rows and
last ``win`` rows (the product's windower on a regular grid, no gaps).

Names: ``<signal>__<stat>`` with stat in STATS (+ spectral ``band0..band{B-1}``, ``centroid``, ``dom_freq``).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

STATS = ("mean", "std", "rms", "min", "max", "ptp", "skew", "kurt", "crest", "slope", "zcr")


def window_starts(n: int, win: int, hop: int) -> np.ndarray:
    return np.arange(0, n - win + 1, hop)


def windows(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    """(n_windows, signals, win) view of ``x`` (n, signals)."""
    v = sliding_window_view(np.asarray(x, dtype=np.float64), win, axis=0)  # (n-win+1, signals, win)
    return v[::hop]


def stats(w: np.ndarray, dt: float = 1.0, which: tuple[str, ...] = STATS) -> np.ndarray:
    """(n_windows, signals, len(which)) statistics of windows ``w`` (n_windows, signals, win)."""
    n = w.shape[-1]
    mean = w.mean(-1)
    d = w - mean[..., None]
    m2 = (d**2).mean(-1)
    std = np.sqrt(m2)
    out = {}
    out["mean"], out["std"] = mean, std
    if "rms" in which or "crest" in which:
        out["rms"] = np.sqrt((w**2).mean(-1))
    mn, mx = w.min(-1), w.max(-1)
    out["min"], out["max"], out["ptp"] = mn, mx, mx - mn
    if "skew" in which:
        m3 = (d**3).mean(-1)
        with np.errstate(all="ignore"):
            g1 = np.where(m2 > 0, m3 / m2**1.5, 0.0)
        out["skew"] = g1 * np.sqrt(n * (n - 1)) / (n - 2) if n >= 3 else np.zeros_like(mean)
    if "kurt" in which:
        m4 = (d**4).mean(-1)
        with np.errstate(all="ignore"):
            g2 = np.where(m2 > 1e-300, m4 / m2**2 - 3.0, 0.0)
        out["kurt"] = (((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3))) if n >= 4 else np.zeros_like(mean)
        out["kurt"] = np.where(m2 > 1e-24 * np.maximum(mean**2, 1e-300), out["kurt"], 0.0)
    if "crest" in which:
        with np.errstate(all="ignore"):
            out["crest"] = np.where(out["rms"] > 0, np.maximum(np.abs(mn), np.abs(mx)) / out["rms"], 0.0)
    if "slope" in which:
        t = (np.arange(n) - (n - 1) / 2.0) * dt
        out["slope"] = (d * t).sum(-1) / (t**2).sum() if n >= 2 else np.zeros_like(mean)
    if "zcr" in which:
        s = d[..., 1:] * d[..., :-1]
        out["zcr"] = (s < 0).sum(-1) / max(n - 1, 1)
    return np.stack([out[k] for k in which], axis=-1)


def spectral(w: np.ndarray, fs: float, n_bands: int = 8) -> np.ndarray:
    """(n_windows, signals, n_bands + 2): band energies of the one-sided power (DC excluded), centroid,
    dominant frequency (``kernels.py`` definitions)."""
    n = w.shape[-1]
    x = w - w.mean(-1, keepdims=True)
    p = np.abs(np.fft.rfft(x, axis=-1)) ** 2 / n
    half = n // 2
    p = p[..., 1 : half + 1]
    k = np.arange(1, half + 1)
    band = np.minimum(n_bands - 1, (k - 1) * n_bands // half)
    bands = np.stack([p[..., band == b].sum(-1) for b in range(n_bands)], axis=-1)
    f = k * fs / n
    tot = p.sum(-1)
    with np.errstate(all="ignore"):
        cen = np.where(tot > 0, (p * f).sum(-1) / tot, 0.0)
    dom = f[np.argmax(p, axis=-1)]
    return np.concatenate([bands, cen[..., None], dom[..., None]], axis=-1)


def features(x: np.ndarray, win: int, hop: int, dt: float = 1.0, which: tuple[str, ...] = STATS,
             spectral_bands: int = 0, names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features (n_windows, signals * k), window start rows, feature names)."""
    w = windows(x, win, hop)
    parts = [stats(w, dt, which)]
    stat_names = list(which)
    if spectral_bands:
        parts.append(spectral(w, 1.0 / dt, spectral_bands))
        stat_names += [f"band{i}" for i in range(spectral_bands)] + ["centroid", "dom_freq"]
    f = np.concatenate(parts, axis=-1)  # (nw, signals, k)
    sig = names or [f"s{i}" for i in range(x.shape[1])]
    fn = [f"{s}__{st}" for s in sig for st in stat_names]
    return f.reshape(f.shape[0], -1), window_starts(x.shape[0], win, hop), fn
