"""Numba feature kernels: per row (one tag over one window on the grid), time-domain statistics and spectra.

Every kernel is ``@njit(nogil=True, cache=True)``: it compiles on first call (not at import), caches the
machine code beside the module, and releases the GIL so callers can spread rows over worker threads.

Definitions (the reference in ``tests/inference/test_features_kernels.py`` computes the same with
numpy/scipy):

* ``mean``, ``min``, ``max``, ``ptp`` = max - min, ``rms`` = sqrt(mean(x²)).
* ``std``: population standard deviation (ddof=0, as numpy's ``np.std`` and tsfresh's ``standard_deviation``).
* ``skew``: the **bias-corrected** sample skewness G1 = sqrt(n(n-1))/(n-2) · m3/m2^1.5 (pandas'
  ``Series.skew``, tsfresh's ``skewness``, ``scipy.stats.skew(x, bias=False)``). 0 when n < 3 or m2 = 0.
* ``kurt``: the **bias-corrected excess** kurtosis G2 = ((n+1)·g2 + 6)·(n-1)/((n-2)(n-3)), g2 = m4/m2² - 3
  (pandas' ``Series.kurt``, ``scipy.stats.kurtosis(x, fisher=True, bias=False)``). 0 when n < 4 or the
  spread is at rounding level.
* ``crest``: max|x| / rms; 0 when rms = 0.
* ``slope``: least-squares slope of x against time in seconds (grid step ``dt``); 0 when n < 2.
* ``zcr``: zero-crossing rate of the de-meaned signal (mean crossings): the number of consecutive valid pairs
  with (x[i-1]-mean)·(x[i]-mean) < 0, divided by the number of consecutive valid pairs.

Spectral features (vibration tags): the mean is removed, then the one-sided power P_k = |X_k|² / n for
k = 1..n/2 (DC excluded) at frequency f_k = k·fs/n. ``band_i``: the sum of P_k over ``n_bands`` equal-width
bands of (0, fs/2] (bin k goes to band min(B-1, (k-1)·B // (n/2))); ``centroid`` = Σ f_k P_k / Σ P_k (0 for a
flat-zero signal); ``dom_freq`` = f_k at the largest P_k (the lowest k on ties).

NaN rule: a non-finite value (NaN, ±inf) is never used. Statistics are computed over the finite values only
(slope and zcr over their positions), and each kernel returns the number of finite values per row. A row with
no finite value gives 0.0 for every feature and ``n_valid`` = 0, so no NaN ever leaves a kernel; the window
builder turns a short ``n_valid`` into a quality flag and the insight is gated. Spectral kernels replace a
non-finite value by the row mean (0 after de-meaning) before the transform.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

STATS: tuple[str, ...] = ("mean", "std", "rms", "min", "max", "ptp", "skew", "kurt", "crest", "slope", "zcr")
N_STATS = len(STATS)


def spectral_names(n_bands: int) -> tuple[str, ...]:
    return (*(f"band{i}" for i in range(n_bands)), "centroid", "dom_freq")


# Rows whose values are all finite (the usual case) take loops LLVM can vectorize: it may reorder their sums
# ("reassoc": results move by rounding only) and, as no NaN can occur there, use packed min/max ("nnan").
# Rows holding a non-finite value keep the masked loops, where no NaN flag is assumed.
_REORDER = {"reassoc", "contract", "nsz"}
_FINITE = {"reassoc", "contract", "nsz", "nnan"}


@njit(nogil=True, cache=True, fastmath=_REORDER)
def _count_sum(x: np.ndarray) -> tuple[int, float]:  # pragma: no cover - numba
    n = 0
    s = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        ok = abs(v) < math.inf  # False for NaN and +-inf
        n += ok
        s += v if ok else 0.0
    return n, s


@njit(nogil=True, cache=True, fastmath=_FINITE)
def _finite_moments(
    x: np.ndarray, t: np.ndarray, mean: float, tmean: float
) -> tuple[float, float, float, float, float, float, float, float, float, int]:  # pragma: no cover
    """min, max, Σd², Σd³, Σd⁴, Σx², max|x|, Σ(t-t̄)d, Σ(t-t̄)², mean crossings of an all-finite row."""
    mn = math.inf
    mx = -math.inf
    m2 = m3 = m4 = sq = absmax = sxy = sxx = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        mn = min(mn, v)
        mx = max(mx, v)
        d = v - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
        sq += v * v
        absmax = max(absmax, abs(v))
        tc = t[i] - tmean
        sxy += tc * d
        sxx += tc * tc
    crossings = 0
    for i in range(1, x.shape[0]):
        crossings += (x[i - 1] - mean) * (x[i] - mean) < 0.0
    return mn, mx, m2, m3, m4, sq, absmax, sxy, sxx, crossings


@njit(nogil=True, cache=True)
def _masked_moments(
    x: np.ndarray, mean: float, n: int
) -> tuple[float, float, float, float, float, float, float, float, float, int, int]:  # pragma: no cover
    """``_finite_moments`` over the finite values of a row holding non-finite ones (slope over their
    positions, crossings over consecutive finite pairs), plus the number of such pairs."""
    mn = math.inf
    mx = -math.inf
    tsum = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        if math.isfinite(v):
            tsum += i
            if v < mn:
                mn = v
            if v > mx:
                mx = v
    tmean = tsum / n
    m2 = m3 = m4 = sq = absmax = sxy = sxx = 0.0
    crossings = 0
    pairs = 0
    prev_ok = False
    prev_d = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        if math.isfinite(v):
            d = v - mean
            d2 = d * d
            m2 += d2
            m3 += d2 * d
            m4 += d2 * d2
            sq += v * v
            a = abs(v)
            if a > absmax:
                absmax = a
            tc = i - tmean
            sxy += tc * d
            sxx += tc * tc
            if prev_ok:
                pairs += 1
                if prev_d * d < 0.0:
                    crossings += 1
            prev_ok = True
            prev_d = d
        else:
            prev_ok = False
    return mn, mx, m2, m3, m4, sq, absmax, sxy, sxx, crossings, pairs


@njit(nogil=True, cache=True)
def _row_stats(x: np.ndarray, t: np.ndarray, dt: float, out: np.ndarray) -> int:  # pragma: no cover
    """The statistics of one row into ``out``; ``t`` = 0, 1, 2, ... as float64 (at least as long as x)."""
    n_total = x.shape[0]
    n, s = _count_sum(x)
    if n == 0:
        for j in range(out.shape[0]):
            out[j] = 0.0
        return 0
    mean = s / n
    if n == n_total:
        # every position counts: mean position (n-1)/2 (exact), n-1 consecutive pairs
        mn, mx, m2, m3, m4, sq, absmax, sxy, sxx, crossings = _finite_moments(x, t, mean, 0.5 * (n - 1.0))
        pairs = n - 1
    else:
        mn, mx, m2, m3, m4, sq, absmax, sxy, sxx, crossings, pairs = _masked_moments(x, mean, n)
    m2 /= n
    m3 /= n
    m4 /= n
    rms = math.sqrt(sq / n)
    out[0] = mean
    out[1] = math.sqrt(m2)
    out[2] = rms
    out[3] = mn
    out[4] = mx
    out[5] = mx - mn
    # spread at rounding level (identical values whose mean rounds): higher moments are noise -> 0
    spread = m2 > (1e-13 * absmax) ** 2 and m2 * m2 > 0.0
    if n >= 3 and spread:
        out[6] = math.sqrt(n * (n - 1.0)) / (n - 2.0) * m3 / m2**1.5
    else:
        out[6] = 0.0
    if n >= 4 and spread:
        g2 = m4 / (m2 * m2) - 3.0
        out[7] = ((n + 1.0) * g2 + 6.0) * (n - 1.0) / ((n - 2.0) * (n - 3.0))
    else:
        out[7] = 0.0
    out[8] = absmax / rms if rms > 0.0 and absmax / rms < math.inf else 0.0
    out[9] = sxy / sxx / dt if sxx > 0.0 else 0.0
    out[10] = crossings / pairs if pairs > 0 else 0.0
    return n


@njit(nogil=True, cache=True)
def positions(n: int) -> np.ndarray:  # pragma: no cover - numba
    """0.0, 1.0, ..., n-1 (the sample positions ``_row_stats`` regresses against)."""
    return np.arange(n).astype(np.float64)


@njit(nogil=True, cache=True)
def stats_rows(x: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Time-domain statistics of each row of ``x`` (rows, samples): (rows, N_STATS) and n_valid (rows,)."""
    rows = x.shape[0]
    out = np.empty((rows, N_STATS), dtype=np.float64)
    n_valid = np.empty(rows, dtype=np.int64)
    t = positions(x.shape[1])
    for r in range(rows):
        n_valid[r] = _row_stats(x[r], t, dt, out[r])
    return out, n_valid


@njit(nogil=True, cache=True)
def stats_rows_into(
    x: np.ndarray, dt: float, out: np.ndarray, n_valid: np.ndarray, lo: int, hi: int
) -> None:  # pragma: no cover - numba
    """``stats_rows`` on rows [lo, hi) into preallocated arrays (for splitting rows over threads)."""
    t = positions(x.shape[1])
    for r in range(lo, hi):
        n_valid[r] = _row_stats(x[r], t, dt, out[r])


@njit(nogil=True, cache=True)
def _twiddles(n: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    half = n // 2
    wr = np.empty(half, dtype=np.float64)
    wi = np.empty(half, dtype=np.float64)
    for k in range(half):
        a = -2.0 * math.pi * k / n
        wr[k] = math.cos(a)
        wi[k] = math.sin(a)
    return wr, wi


@njit(nogil=True, cache=True)
def _fft_inplace(re: np.ndarray, im: np.ndarray, wr: np.ndarray, wi: np.ndarray) -> None:  # pragma: no cover
    """Iterative radix-2 decimation-in-time FFT; n must be a power of two; exact twiddles from a table."""
    n = re.shape[0]
    j = 0
    for i in range(1, n):
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j ^= bit
        if i < j:
            t = re[i]
            re[i] = re[j]
            re[j] = t
            t = im[i]
            im[i] = im[j]
            im[j] = t
    length = 2
    while length <= n:
        half = length >> 1
        step = n // length
        for start in range(0, n, length):
            for k in range(half):
                cr = wr[k * step]
                ci = wi[k * step]
                a = start + k
                b = a + half
                xr = re[b] * cr - im[b] * ci
                xi = re[b] * ci + im[b] * cr
                re[b] = re[a] - xr
                im[b] = im[a] - xi
                re[a] += xr
                im[a] += xi
        length <<= 1


@njit(nogil=True, cache=True)
def _spectral_from_power(p: np.ndarray, n: int, fs: float, n_bands: int, out: np.ndarray) -> None:
    # pragma: no cover - numba
    half = n // 2
    for b in range(n_bands + 2):
        out[b] = 0.0
    total = 0.0
    weighted = 0.0
    best = -1.0
    best_k = 1
    for k in range(1, half + 1):
        pk = p[k]
        band = (k - 1) * n_bands // half
        if band >= n_bands:
            band = n_bands - 1
        out[band] += pk
        f = k * fs / n
        total += pk
        weighted += f * pk
        if pk > best:
            best = pk
            best_k = k
    out[n_bands] = weighted / total if total > 0.0 else 0.0
    out[n_bands + 1] = best_k * fs / n if total > 0.0 else 0.0


@njit(nogil=True, cache=True)
def _demean_fill(x: np.ndarray, buf: np.ndarray) -> None:  # pragma: no cover - numba
    n = x.shape[0]
    s = 0.0
    c = 0
    for i in range(n):
        if math.isfinite(x[i]):
            s += x[i]
            c += 1
    mean = s / c if c > 0 else 0.0
    for i in range(n):
        buf[i] = x[i] - mean if math.isfinite(x[i]) else 0.0


@njit(nogil=True, cache=True)
def spectral_rows_into(
    x: np.ndarray, fs: float, n_bands: int, out: np.ndarray, lo: int, hi: int
) -> None:  # pragma: no cover - numba
    """Spectral features of rows [lo, hi) of ``x`` (rows, n), n a power of two, with the numba FFT."""
    n = x.shape[1]
    wr, wi = _twiddles(n)
    re = np.empty(n, dtype=np.float64)
    im = np.empty(n, dtype=np.float64)
    p = np.empty(n // 2 + 1, dtype=np.float64)
    for r in range(lo, hi):
        _demean_fill(x[r], re)
        for i in range(n):
            im[i] = 0.0
        _fft_inplace(re, im, wr, wi)
        for k in range(n // 2 + 1):
            p[k] = (re[k] * re[k] + im[k] * im[k]) / n
        _spectral_from_power(p, n, fs, n_bands, out[r])


@njit(nogil=True, cache=True)
def spectral_from_power_rows(p: np.ndarray, n: int, fs: float, n_bands: int) -> np.ndarray:
    # pragma: no cover - numba
    rows = p.shape[0]
    out = np.empty((rows, n_bands + 2), dtype=np.float64)
    for r in range(rows):
        _spectral_from_power(p[r], n, fs, n_bands, out[r])
    return out


@njit(nogil=True, cache=True)
def demean_fill_rows(x: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    out = np.empty_like(x)
    for r in range(x.shape[0]):
        _demean_fill(x[r], out[r])
    return out


def is_pow2(n: int) -> bool:
    return n >= 2 and (n & (n - 1)) == 0


def spectral_rows(x: np.ndarray, fs: float, n_bands: int, *, use_numba_fft: bool | None = None) -> np.ndarray:
    """Spectral features of each row: (rows, n_bands + 2). By default numpy's real FFT outside numba, then
    the numba reduction: measured faster than the numba radix-2 complex FFT (bench/bench_features.py).
    ``use_numba_fft=True`` selects the numba FFT (power-of-two n only)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    rows, n = x.shape
    if n < 2:
        return np.zeros((rows, n_bands + 2), dtype=np.float64)
    numba_fft = bool(use_numba_fft) and is_pow2(n)
    if numba_fft:
        out = np.empty((rows, n_bands + 2), dtype=np.float64)
        spectral_rows_into(x, float(fs), int(n_bands), out, 0, rows)
        return out
    spec = np.fft.rfft(demean_fill_rows(x), axis=1)
    p = np.ascontiguousarray((spec.real**2 + spec.imag**2) / n)
    result: np.ndarray = spectral_from_power_rows(p, n, float(fs), int(n_bands))
    return result


def warm_up() -> None:
    """Compile (or load from cache) the kernels the stage calls (``FeatureExtractor.matrix``,
    ``Windower``), with the argument types it passes, e.g. in a worker thread before the first window."""
    x = np.zeros((1, 8), dtype=np.float64)
    stats_rows_into(x, 1.0, np.empty((1, N_STATS), dtype=np.float64), np.empty(1, dtype=np.int64), 0, 1)
    fill_grid(np.zeros((1, 2)), np.zeros((1, 2), dtype=np.int64), np.full(1, np.nan), 1)
    spectral_rows(x, 8.0, 2)
    spectral_rows(np.zeros((1, 6)), 6.0, 2)


@njit(nogil=True, cache=True)
def fill_grid(sums: np.ndarray, counts: np.ndarray, prior: np.ndarray, hold_cells: int) -> np.ndarray:
    # pragma: no cover - numba
    """Grid values from per-cell sums and counts (rows, cells): the cell mean where a cell has samples, else
    the last value held for at most ``hold_cells`` cells (``prior``: the value before the grid, NaN if none),
    else NaN."""
    rows, cells = sums.shape
    out = np.empty((rows, cells), dtype=np.float64)
    for r in range(rows):
        last = prior[r]
        age = 0 if math.isfinite(last) else hold_cells + 1
        for c in range(cells):
            if counts[r, c] > 0:
                last = sums[r, c] / counts[r, c]
                age = 0
                out[r, c] = last
            else:
                age += 1
                out[r, c] = last if age <= hold_cells else math.nan
    return out
