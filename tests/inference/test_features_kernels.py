"""Numba feature kernels against a float64 numpy/scipy reference (hypothesis), and the NaN rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from inference import kernels
from inference.kernels import STATS, fill_grid, spectral_rows, stats_rows

REL = 1e-9


def reference_stats(x: np.ndarray, dt: float) -> dict[str, float]:
    """The documented definitions, with numpy/scipy in float64 over the finite values."""
    pos = np.flatnonzero(np.isfinite(x))
    v = x[pos]
    n = len(v)
    mean = float(np.mean(v))
    std = float(np.std(v))
    rms = float(np.sqrt(np.mean(v * v)))
    out = {
        "mean": mean,
        "std": std,
        "rms": rms,
        "min": float(v.min()),
        "max": float(v.max()),
        "ptp": float(np.ptp(v)),
    }
    out["skew"] = float(scipy.stats.skew(v, bias=False)) if n >= 3 and std > 0 else 0.0
    out["kurt"] = float(scipy.stats.kurtosis(v, fisher=True, bias=False)) if n >= 4 and std > 0 else 0.0
    out["crest"] = float(np.max(np.abs(v)) / rms) if rms > 0 else 0.0
    out["slope"] = float(np.polyfit(pos * dt, v, 1)[0]) if n >= 2 else 0.0
    d = x - mean
    pairs = [(d[i - 1], d[i]) for i in range(1, len(x)) if np.isfinite(x[i - 1]) and np.isfinite(x[i])]
    out["zcr"] = sum(1 for a, b in pairs if a * b < 0) / len(pairs) if pairs else 0.0
    return out


def close(a: float, b: float, scale: float, rel: float = REL) -> bool:
    return abs(a - b) <= rel * max(abs(b), scale)


# physical readings: |v| in [1e-30, 1e6] or exactly 0 (underflowing 4th powers are not sensor data)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False).map(
    lambda v: v if abs(v) >= 1e-30 else 0.0
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.float64, st.integers(4, 300), elements=finite), st.floats(1e-3, 10.0))
def test_stats_match_reference(x: np.ndarray, dt: float) -> None:
    out, n_valid = stats_rows(x.reshape(1, -1), dt)
    assert n_valid[0] == len(x)
    ref = reference_stats(x, dt)
    scale = float(np.max(np.abs(x))) or 1.0
    std = ref["std"]
    for i, name in enumerate(STATS):
        got = float(out[0, i])
        assert math.isfinite(got), name
        if name in ("skew", "kurt") and std <= 1e-6 * scale:
            continue  # near-constant: higher moments are ill-conditioned in any implementation
        if name == "slope":
            # the slope's own scale: data range over the time span
            tscale = (ref["ptp"] or 1.0) / (dt * len(x))
            assert close(got, ref[name], tscale, 1e-8), (name, got, ref[name])
        elif name == "zcr":
            # crossings of the mean: exact when no value sits within rounding of the mean
            d = np.abs(x - ref["mean"])
            if np.all(d > 1e-9 * scale):
                assert got == pytest.approx(ref[name], abs=1e-12)
        elif name in ("skew", "kurt", "crest"):
            assert close(got, ref[name], 1.0), (name, got, ref[name])
        else:
            assert close(got, ref[name], scale), (name, got, ref[name])


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(1, 200), elements=st.one_of(finite, st.just(np.nan), st.just(np.inf))))
def test_nan_never_passes(x: np.ndarray) -> None:
    out, n_valid = stats_rows(x.reshape(1, -1), 1.0)
    assert np.isfinite(out).all()
    assert n_valid[0] == np.count_nonzero(np.isfinite(x))
    if n_valid[0] == 0:
        assert (out == 0).all()
    elif n_valid[0] >= 4:
        ref = reference_stats(x, 1.0)
        scale = float(np.max(np.abs(x[np.isfinite(x)]))) or 1.0
        for name in ("mean", "std", "rms", "min", "max", "ptp"):
            assert close(float(out[0, STATS.index(name)]), ref[name], scale)
    spec = spectral_rows(x.reshape(1, -1), 100.0, 4)
    assert np.isfinite(spec).all()


def reference_spectral(x: np.ndarray, fs: float, n_bands: int) -> np.ndarray:
    v = np.where(np.isfinite(x), x, np.nan)
    m = np.nanmean(v) if np.isfinite(v).any() else 0.0
    v = np.where(np.isfinite(v), v - m, 0.0)
    n = len(v)
    p = np.abs(np.fft.rfft(v)) ** 2 / n
    k = np.arange(1, n // 2 + 1)
    pk = p[1 : n // 2 + 1]
    f = k * fs / n
    bands = np.minimum((k - 1) * n_bands // (n // 2), n_bands - 1)
    out = np.zeros(n_bands + 2)
    np.add.at(out, bands, pk)
    total = pk.sum()
    out[n_bands] = (f * pk).sum() / total if total > 0 else 0.0
    out[n_bands + 1] = f[int(np.argmax(pk))] if total > 0 else 0.0
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 10).flatmap(lambda k: arrays(np.float64, 2**k, elements=finite)), st.integers(1, 16))
def test_spectral_matches_numpy_fft(x: np.ndarray, n_bands: int) -> None:
    n = len(x)
    ref = reference_spectral(x, 1000.0, n_bands)
    total = ref[:n_bands].sum()
    for use_numba in (True, False):
        got = spectral_rows(x.reshape(1, -1), 1000.0, n_bands, use_numba_fft=use_numba)[0]
        # band energies: relative to the total energy (a band can be ~0 by cancellation)
        for b in range(n_bands):
            assert close(got[b], ref[b], total * 1e-3 if total > 0 else 1e-300), (b, got, ref)
        assert close(got[n_bands], ref[n_bands], 1000.0 / n)
        if total > 0:
            # the dominant bin may differ only on an exact tie of powers; compare the power there
            kg = round(got[n_bands + 1] * n / 1000.0)
            kr = round(ref[n_bands + 1] * n / 1000.0)
            p = np.abs(np.fft.rfft(x - x.mean())) ** 2
            assert close(p[kg], p[kr], 0.0, 1e-9)


def test_spectral_non_power_of_two_uses_numpy_fft() -> None:
    x = np.sin(2 * np.pi * 50 * np.arange(1000) / 1000.0)
    got = spectral_rows(x.reshape(1, -1), 1000.0, 4)[0]
    ref = reference_spectral(x, 1000.0, 4)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    assert got[-1] == pytest.approx(50.0)


def test_tone_lands_in_its_band() -> None:
    fs, n = 1024.0, 1024
    x = np.sin(2 * np.pi * 300 * np.arange(n) / fs)
    got = spectral_rows(x.reshape(1, -1), fs, 8)[0]
    assert got[-1] == pytest.approx(300.0)
    assert got[-2] == pytest.approx(300.0, rel=1e-6)
    assert int(np.argmax(got[:8])) == 4  # 300 Hz of 0..512 Hz in 8 bands of 64 Hz


def test_constant_row_and_short_rows() -> None:
    out, nv = stats_rows(np.full((1, 10), 3.0), 1.0)
    row = dict(zip(STATS, out[0], strict=True))
    assert row["std"] == 0 and row["skew"] == 0 and row["kurt"] == 0 and row["zcr"] == 0
    assert row["crest"] == pytest.approx(1.0)
    out, nv = stats_rows(np.array([[1.0, np.nan]]), 1.0)
    assert nv[0] == 1 and np.isfinite(out).all()


def test_fill_grid_holds_then_gaps() -> None:
    sums = np.array([[1.0, 0, 0, 0, 5.0, 0]])
    counts = np.array([[1, 0, 0, 0, 1, 0]])
    got = fill_grid(sums, counts, np.array([np.nan]), 2)
    np.testing.assert_array_equal(np.isnan(got[0]), [False, False, False, True, False, False])
    assert got[0, 2] == 1.0 and got[0, 5] == 5.0
    got = fill_grid(np.zeros((1, 3)), np.zeros((1, 3), dtype=np.int64), np.array([7.0]), 1)
    assert got[0, 0] == 7.0 and np.isnan(got[0, 1])


def test_kernels_are_nogil_and_cached() -> None:
    for fn in (kernels.stats_rows, kernels.stats_rows_into, kernels.spectral_rows_into, kernels.fill_grid):
        assert fn.targetoptions.get("nogil") is True
        assert fn._cache is not None and type(fn._cache).__name__ != "NullCache"
