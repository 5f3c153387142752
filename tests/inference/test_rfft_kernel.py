"""The fused kernel (statistics and a real FFT in one Numba pass) gives the statistics kernel's values
exactly and numpy's FFT spectrum within rounding; the feature extractor uses it for power-of-two grids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from inference import kernels
from inference.features import FeatureExtractor
from inference.rfft_kernel import features_rows_into, rfft_tables
from inference.windows import Window
from tests.inference.test_features_kernels import close, reference_spectral

values = st.one_of(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), st.just(np.nan))


def fused(x: np.ndarray, fs: float, n_bands: int, spectral: np.ndarray) -> tuple[np.ndarray, ...]:
    rows = x.shape[0]
    stats = np.empty((rows, kernels.N_STATS))
    spec = np.full((rows, n_bands + 2), -1.0)  # left alone where a row is not spectral
    nv = np.empty(rows, dtype=np.int64)
    features_rows_into(x, 1.0 / fs, fs, n_bands, spectral, stats, spec, nv, 0, rows, *rfft_tables(x.shape[1]))
    return stats, nv, spec


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 10).flatmap(lambda k: arrays(np.float64, (3, 2**k), elements=values)),
       st.integers(1, 16))
def test_fused_matches_the_statistics_kernel_and_numpy_fft(x: np.ndarray, n_bands: int) -> None:
    fs = 1000.0
    stats, nv, spec = fused(x, fs, n_bands, np.array([True, True, False]))
    ref_stats, ref_nv = kernels.stats_rows(x, 1.0 / fs)
    np.testing.assert_array_equal(stats, ref_stats)  # the same kernel: bit for bit
    np.testing.assert_array_equal(nv, ref_nv)
    assert (spec[2] == -1.0).all()
    n = x.shape[1]
    for r in (0, 1):
        ref = reference_spectral(x[r], fs, n_bands)
        total = ref[:n_bands].sum()
        # relative to the total energy (a band can be ~0 by cancellation), and to the signal's energy (a
        # constant row leaves rounding-level power after de-meaning)
        scale = max(total * 1e-3, 1e-12 * float(np.nansum(x[r] ** 2)), 1e-300)
        for b in range(n_bands):
            assert close(spec[r, b], ref[b], scale), (b, spec[r], ref)
        if total <= scale:
            continue  # rounding-level power: its centroid and peak are noise in either implementation
        assert close(spec[r, n_bands], ref[n_bands], fs / n)
        # the dominant bin may differ only on an exact tie of powers: compare the power there
        v = np.where(np.isfinite(x[r]), x[r], np.nan)
        d = np.where(np.isfinite(v), v - np.nanmean(v), 0.0)
        p = np.abs(np.fft.rfft(d)) ** 2
        kg, kr = round(spec[r, -1] * n / fs), round(ref[-1] * n / fs)
        assert close(p[kg], p[kr], 0.0, 1e-9)


def test_tone_lands_in_its_bin_and_band() -> None:
    fs, n = 1024.0, 1024
    x = np.sin(2 * np.pi * 300 * np.arange(n) / fs).reshape(1, -1)
    _, _, spec = fused(x, fs, 8, np.array([True]))
    assert spec[0, -1] == pytest.approx(300.0)
    assert spec[0, -2] == pytest.approx(300.0, rel=1e-6)
    assert int(np.argmax(spec[0, :8])) == 4  # 300 Hz of 0..512 Hz in 8 bands of 64 Hz


def _windows(n_grid: int, count: int) -> list[Window]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(count):
        grid = rng.normal(size=(2, n_grid)) + np.sin(np.arange(n_grid) * 0.7)
        grid[1, i % n_grid] = np.nan
        out.append(Window(f"eq/{i % 5}", i, i + 1, ["vib", "temp"], grid, n_grid, 1.0, 0, {}))
    return out


@pytest.mark.parametrize("threads", [1, 2])
def test_extractor_fused_path_equals_the_two_kernel_path(threads: int) -> None:
    windows = _windows(64, 80)  # 160 rows: split over threads when there are two
    ext = FeatureExtractor(16.0, ["vib"], 8, threads)
    names, values, nv = ext.matrix(windows)
    ext.close()
    rows = np.concatenate([w.grid for w in windows])
    ref_stats, ref_nv = kernels.stats_rows(rows, 1.0 / 16.0)
    ref_spec = kernels.spectral_rows(rows[0::2], 16.0, 8)  # numpy's FFT, the "vib" rows
    for wi in range(len(windows)):
        got = dict(zip(names, values[wi], strict=True))
        for j, stat in enumerate(kernels.STATS):
            assert got[f"vib__{stat}"] == ref_stats[2 * wi, j]
            assert got[f"temp__{stat}"] == ref_stats[2 * wi + 1, j]
        for j, name in enumerate(kernels.spectral_names(8)):
            assert got[f"vib__{name}"] == pytest.approx(ref_spec[wi, j], rel=1e-9, abs=1e-12)
        assert "temp__band0" not in got
        assert nv[wi] == min(ref_nv[2 * wi], ref_nv[2 * wi + 1])


@pytest.mark.parametrize("threads", [2, 3])
def test_rows_split_over_threads_cover_each_row_once_the_caller_taking_the_first_part(threads: int) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from inference.features import split_over_threads

    seen = np.zeros(101, dtype=np.int64)
    where: dict[int, int] = {}

    def part(lo: int, hi: int) -> None:
        seen[lo:hi] += 1
        where[lo] = threading.get_ident()

    with ThreadPoolExecutor(threads - 1) as pool:
        split_over_threads(part, 101, threads, pool)
    assert (seen == 1).all()
    assert len(where) == threads and where[0] == threading.get_ident()
    assert all(ident != threading.get_ident() for lo, ident in where.items() if lo)


def test_a_failing_part_on_the_calling_thread_still_waits_for_the_workers() -> None:
    import time
    from concurrent.futures import ThreadPoolExecutor

    from inference.features import split_over_threads

    done: list[int] = []

    def part(lo: int, hi: int) -> None:
        if lo == 0:
            raise ValueError("first part")
        time.sleep(0.2)
        done.append(lo)

    pool = ThreadPoolExecutor(1)
    try:
        with pytest.raises(ValueError, match="first part"):
            split_over_threads(part, 10, 2, pool)
        assert done == [5]  # the worker's part had finished before the error came out (pool still open)
    finally:
        pool.shutdown()
