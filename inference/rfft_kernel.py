"""One Numba pass per row for every feature: the time-domain statistics and, for power-of-two rows, the
spectrum through a real FFT inside the kernel (no numpy FFT, no temporary arrays per row).

Definitions are those of ``inference.kernels`` (its docstring); this module only computes them faster:

* the real FFT of n samples is a complex radix-2 FFT of n/2 points (even samples as the real part, odd as
  the imaginary) and one split step, so half the butterflies of a complex FFT of n;
* the de-meaned row is loaded straight into bit-reversed order (no separate fill and permutation pass);
* twiddles come from tables built once per n (``rfft_tables``), each stage's contiguous, exact (cos/sin of
  the angle, not a recurrence), so results stay within rounding of numpy's FFT;
* the butterflies run on separate views of the two halves of each block, and the statistics' sums may be
  reordered (``inference.kernels``), so LLVM vectorizes both; the integer band index of each bin is not
  divided out per bin (bands are contiguous ranges of bins).

``features_rows_into`` works on rows [lo, hi) into preallocated outputs and releases the GIL, so callers
split rows over threads (``inference.features.FeatureExtractor``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

from inference.kernels import N_STATS, _row_stats, positions


@functools.lru_cache(maxsize=16)
def rfft_tables(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For a real FFT of ``n`` (a power of two, >= 4): the bit reversal of n/2 points, the stage twiddles
    (stage with half-length h at offset h - 1: exp(-2πik/2h), k < h) and the split twiddles exp(-2πik/n),
    k = 0..n/2. Read-only, shared by every call for that n."""
    m = n // 2
    bits = m.bit_length() - 1
    brev = np.array([int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(m)], dtype=np.int64)
    twr = np.empty(max(1, m - 1))
    twi = np.empty(max(1, m - 1))
    h = 1
    while h < m:
        k = np.arange(h)
        twr[h - 1 : 2 * h - 1] = np.cos(-np.pi * k / h)
        twi[h - 1 : 2 * h - 1] = np.sin(-np.pi * k / h)
        h *= 2
    k = np.arange(m + 1)
    swr, swi = np.cos(-2.0 * np.pi * k / n), np.sin(-2.0 * np.pi * k / n)
    tables = (brev, twr, twi, swr, swi)
    for t in tables:
        t.setflags(write=False)
    return tables


@njit(nogil=True, cache=True, fastmath={"contract"})
def _fft_bitreversed(re: np.ndarray, im: np.ndarray, twr: np.ndarray, twi: np.ndarray) -> None:
    # pragma: no cover - numba
    """In-place radix-2 decimation-in-time FFT of input already in bit-reversed order (2 points or more,
    a power of two)."""
    m = re.shape[0]
    if m == 2:
        ar, ai, br, bi = re[0], im[0], re[1], im[1]
        re[0], im[0], re[1], im[1] = ar + br, ai + bi, ar - br, ai - bi
        return
    for s in range(0, m, 4):  # the first two stages as one radix-4 pass: twiddles 1 and -i only
        b0r = re[s] + re[s + 1]
        b0i = im[s] + im[s + 1]
        b1r = re[s] - re[s + 1]
        b1i = im[s] - im[s + 1]
        b2r = re[s + 2] + re[s + 3]
        b2i = im[s + 2] + im[s + 3]
        b3r = re[s + 2] - re[s + 3]
        b3i = im[s + 2] - im[s + 3]
        re[s] = b0r + b2r
        im[s] = b0i + b2i
        re[s + 2] = b0r - b2r
        im[s + 2] = b0i - b2i
        re[s + 1] = b1r + b3i  # b3 * -i = (b3i, -b3r)
        im[s + 1] = b1i - b3r
        re[s + 3] = b1r - b3i
        im[s + 3] = b1i + b3r
    half = 4
    while half < m:
        wr = twr[half - 1 : 2 * half - 1]
        wi = twi[half - 1 : 2 * half - 1]
        for start in range(0, m, 2 * half):
            # the two halves as separate views: LLVM then sees they do not overlap and vectorizes
            ar = re[start : start + half]
            ai = im[start : start + half]
            br = re[start + half : start + 2 * half]
            bi = im[start + half : start + 2 * half]
            for k in range(half):
                xr = br[k] * wr[k] - bi[k] * wi[k]
                xi = br[k] * wi[k] + bi[k] * wr[k]
                br[k] = ar[k] - xr
                bi[k] = ai[k] - xi
                ar[k] += xr
                ai[k] += xi
        half *= 2


@njit(nogil=True, cache=True, fastmath={"contract"})
def _power(re: np.ndarray, im: np.ndarray, swr: np.ndarray, swi: np.ndarray, p: np.ndarray) -> None:
    # pragma: no cover - numba
    """The split step: from the FFT Z of the packed row, the one-sided power P_k = |X_k|² / n of the
    real row into p[k], k = 1..m (m = n/2), with X_k = (Z_k + conj Z_(m-k))/2 - i e^(-2πik/n) (Z_k -
    conj Z_(m-k))/2."""
    m = re.shape[0]
    inv_n = 0.5 / m
    for k in range(1, m):
        ar = re[k]
        ai = im[k]
        br = re[m - k]
        bi = im[m - k]
        er = 0.5 * (ar + br)
        ei = 0.5 * (ai - bi)
        orr = 0.5 * (ai + bi)
        oi = -0.5 * (ar - br)
        xr = er + swr[k] * orr - swi[k] * oi
        xi = ei + swr[k] * oi + swi[k] * orr
        p[k] = (xr * xr + xi * xi) * inv_n
    nyquist = re[0] - im[0]  # k = m: Z_m = Z_0 and e^(-iπ) = -1
    p[m] = nyquist * nyquist * inv_n


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _reduce(p: np.ndarray, t: np.ndarray, m: int, fs: float, n_bands: int, out: np.ndarray) -> None:
    # pragma: no cover - numba
    """Band sums, centroid and dominant frequency of the power p[1..m] (``kernels.spectral_rows``)."""
    n = 2 * m
    total = 0.0
    hi = 1
    for b in range(n_bands):  # bin k is in band (k - 1) * B // m: contiguous ranges of k
        lo = hi
        hi = ((b + 1) * m + n_bands - 1) // n_bands + 1
        acc = 0.0
        for k in range(lo, hi):
            acc += p[k]
        out[b] = acc
        total += acc
    weighted = 0.0  # sum of k P_k; times fs / n, the sum of f_k P_k
    for k in range(1, m + 1):
        weighted += t[k] * p[k]
    best = -1.0
    best_k = 1
    for k in range(1, m + 1):  # the lowest k on ties
        if p[k] > best:
            best = p[k]
            best_k = k
    out[n_bands] = weighted * fs / n / total if total > 0.0 else 0.0
    out[n_bands + 1] = best_k * fs / n if total > 0.0 else 0.0


@njit(nogil=True, cache=True)
def _spectral_row(
    x: np.ndarray, mean: float, fs: float, n_bands: int, out: np.ndarray,
    re: np.ndarray, im: np.ndarray, p: np.ndarray, t: np.ndarray,
    brev: np.ndarray, twr: np.ndarray, twi: np.ndarray, swr: np.ndarray, swi: np.ndarray,
) -> None:  # pragma: no cover - numba
    m = x.shape[0] // 2
    for j in range(m):  # de-meaned, non-finite -> 0 (the row mean), into bit-reversed order
        v0 = x[2 * j]
        v1 = x[2 * j + 1]
        q = brev[j]
        re[q] = v0 - mean if abs(v0) < math.inf else 0.0  # False for NaN and +-inf
        im[q] = v1 - mean if abs(v1) < math.inf else 0.0
    _fft_bitreversed(re, im, twr, twi)
    _power(re, im, swr, swi, p)
    _reduce(p, t, m, fs, n_bands, out)


@njit(nogil=True, cache=True)
def features_rows_into(
    x: np.ndarray, dt: float, fs: float, n_bands: int, spectral: np.ndarray,
    stats: np.ndarray, spec: np.ndarray, n_valid: np.ndarray, lo: int, hi: int,
    brev: np.ndarray, twr: np.ndarray, twi: np.ndarray, swr: np.ndarray, swi: np.ndarray,
) -> None:  # pragma: no cover - numba
    """Rows [lo, hi) of ``x`` (rows, n), n a power of two >= 4: statistics into ``stats`` and ``n_valid``
    (``inference.kernels.stats_rows``), and, where ``spectral[r]``, the spectral features into ``spec[r]``
    (``inference.kernels.spectral_rows``); ``spec`` rows of non-spectral rows are left as they are. The
    tables are ``rfft_tables(n)``."""
    m = x.shape[1] // 2
    re = np.empty(m, dtype=np.float64)
    im = np.empty(m, dtype=np.float64)
    p = np.empty(m + 1, dtype=np.float64)
    t = positions(x.shape[1])
    for r in range(lo, hi):
        n_valid[r] = _row_stats(x[r], t, dt, stats[r])
        if spectral[r]:
            # the spectral definition de-means by the mean of the finite values: the statistics' own
            _spectral_row(x[r], stats[r, 0], fs, n_bands, spec[r], re, im, p, t, brev, twr, twi, swr,
                          swi)


def warm_up() -> None:
    """Compile (or load from Numba's cache) ``features_rows_into`` with the types the extractor passes."""
    x = np.zeros((1, 8), dtype=np.float64)
    features_rows_into(x, 1.0, 8.0, 2, np.ones(1, dtype=np.bool_), np.empty((1, N_STATS)), np.empty((1, 4)),
                       np.empty(1, dtype=np.int64), 0, 1, *rfft_tables(8))
