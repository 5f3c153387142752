"""The data-quality gate: hard failures become dead letters, soft findings travel on as quality flags.

Hard (the sample is removed and dead-lettered with its reason): a missing tag or timestamp, NaN and
infinite values, timestamps too far in the future or past (``QualitySettings.max_future_s``/``max_past_s``
around ``now_us``; the past rule is off with ``accept_past``, for replays of history), duplicates (the same
tag and timestamp, within the batch and against recent batches), and unmapped tags when
``QualitySettings.unmapped = "dead_letter"`` and a tag map (``valid_ranges``) is given. Payloads that
cannot be decoded and values that cannot be coerced are dead-lettered earlier, by the codecs.

Soft (a ``QualityFlag`` bit is set): ``OUT_OF_RANGE`` (outside the tag's valid range), ``STUCK`` (the same
value for ``stuck_samples`` samples in a row, counted across batches), ``SPIKE`` (robust z-score above
``spike_sigma`` against the median and MAD of the tag's last ``window`` values from earlier batches),
``UNCERTAIN_SOURCE`` (the source said UNCERTAIN) and ``UNMAPPED``.

Everything is vectorized with numpy per batch; per-tag state lives in arrays indexed by a tag id, so the
only Python loop is over the batch's distinct tags (its dictionary). ``counters`` counts every reason.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edge.core.datamodel import DEAD_LETTERS, Quality, QualityFlag
from ingest.deadletter import Reason, dead_letter_batch, dead_letters_from_samples
from ingest.settings import QualitySettings

_MAD_TO_SIGMA = 1.4826


def _iso(us: int) -> str:
    """A microsecond timestamp as ISO 8601 UTC; one far outside datetime's range as its raw number."""
    try:
        return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds")
    except (OverflowError, OSError, ValueError):
        return f"{us} us"


class QualityGate:
    """Apply with :meth:`apply`; thread-safe (a lock serialises batches, as the state is per tag)."""

    def __init__(self, settings: QualitySettings,
                 valid_ranges: Mapping[str, tuple[float | None, float | None]] = {},
                 *, window: int = 64, min_history: int = 16, duplicate_memory: int = 1_000_000) -> None:
        self.settings = settings
        self.valid_ranges = dict(valid_ranges)
        self.window = window
        self.min_history = min_history
        self.duplicate_memory = duplicate_memory
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._gid: dict[str, int] = {}
        cap = 64
        self._lo = np.full(cap, -np.inf)
        self._hi = np.full(cap, np.inf)
        self._mapped = np.zeros(cap, dtype=bool)
        self._last_value = np.full(cap, np.nan)
        self._run = np.zeros(cap, dtype=np.int64)
        self._hwm = np.full(cap, np.iinfo(np.int64).min, dtype=np.int64)
        self._ring = np.full((cap, window), np.nan)
        self._ring_n = np.zeros(cap, dtype=np.int64)
        self._seen: set[bytes] = set()
        self._seen_order: deque[np.ndarray] = deque()
        self._seen_count = 0

    # -- state ----------------------------------------------------------------------------------------------
    def _grow(self, need: int) -> None:
        cap = len(self._lo)
        if need <= cap:
            return
        new = max(need, cap * 2)

        def ext(a: np.ndarray, fill: float | int) -> np.ndarray:
            shape = (new, *a.shape[1:])
            b = np.full(shape, fill, dtype=a.dtype)
            b[:cap] = a
            return b

        self._lo, self._hi = ext(self._lo, -np.inf), ext(self._hi, np.inf)
        self._mapped = ext(self._mapped, False)
        self._last_value, self._run = ext(self._last_value, np.nan), ext(self._run, 0)
        self._hwm = ext(self._hwm, np.iinfo(np.int64).min)
        self._ring, self._ring_n = ext(self._ring, np.nan), ext(self._ring_n, 0)

    def _gids(self, dictionary: list[str]) -> np.ndarray:
        out = np.empty(len(dictionary), dtype=np.int64)
        for i, tag in enumerate(dictionary):
            g = self._gid.get(tag)
            if g is None:
                g = self._gid[tag] = len(self._gid)
                self._grow(g + 1)
                rng = self.valid_ranges.get(tag)
                if rng is not None:
                    self._mapped[g] = True
                    self._lo[g] = -np.inf if rng[0] is None else rng[0]
                    self._hi[g] = np.inf if rng[1] is None else rng[1]
            out[i] = g
        return out

    # -- the gate -------------------------------------------------------------------------------------------
    def apply(self, samples: pa.RecordBatch, now_us: int) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        """(kept samples with soft flags set, dead letters with reasons) for a ``SAMPLES`` batch."""
        with self._lock:
            return self._apply(samples, now_us)

    def _apply(self, samples: pa.RecordBatch, now_us: int) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        n = samples.num_rows
        self.counters["in"] += n
        if n == 0:
            return samples, dead_letter_batch([])
        s = self.settings
        tag_col = samples.column("tag")
        ts_col = samples.column("ts").cast(pa.int64())
        # a sample without a tag or a timestamp breaks the schema's promise; a codec or plugin that lets
        # one through must not crash the gate (and take the good rows with it)
        missing = (tag_col.is_null().to_numpy(zero_copy_only=False)
                   | ts_col.is_null().to_numpy(zero_copy_only=False))
        if missing.any():
            tag_col = pc.if_else(pa.array(missing), pa.scalar("", pa.string()), tag_col.cast(pa.string()))
            ts_col = ts_col.fill_null(0)
        if not pa.types.is_dictionary(tag_col.type):
            tag_col = tag_col.dictionary_encode()
        codes = tag_col.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        g = self._gids(tag_col.dictionary.to_pylist())[codes]
        values = samples.column("value").fill_null(np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        ts = ts_col.to_numpy(zero_copy_only=False)
        flags = samples.column("flags").to_numpy(zero_copy_only=False).astype(np.int32)
        quality = samples.column("quality").to_numpy(zero_copy_only=False)

        # hard rules, in order: value, time, duplicate
        reasons = np.full(n, None, dtype=object)
        isnan = ~missing & np.isnan(values)
        isinf = ~missing & np.isinf(values)
        reasons[missing] = Reason.MISSING_FIELD.value
        reasons[isnan] = Reason.NAN.value
        reasons[isinf] = Reason.INF.value
        bad = missing | isnan | isinf
        future = ~bad & (ts > now_us + int(s.max_future_s * 1e6))
        if s.accept_past:
            past = np.zeros(n, dtype=bool)
        else:
            past = ~bad & ~future & (ts < now_us - int(s.max_past_s * 1e6))
        reasons[future] = Reason.TS_FUTURE.value
        reasons[past] = Reason.TS_PAST.value
        bad |= future | past
        if s.unmapped == "dead_letter" and self.valid_ranges:
            unmapped = ~bad & ~self._mapped[g]
            reasons[unmapped] = Reason.UNMAPPED_TAG.value
            bad |= unmapped
        if s.drop_duplicates:
            dup = self._duplicates(g, ts, ~bad)
            reasons[dup] = Reason.DUPLICATE.value
            bad |= dup

        keep = ~bad
        kg, kv, kflags = g[keep], values[keep], flags[keep]
        # soft rules
        if self.valid_ranges:
            oor = (kv < self._lo[kg]) | (kv > self._hi[kg])
            kflags[oor] |= int(QualityFlag.OUT_OF_RANGE)
            self.counters["out_of_range"] += int(oor.sum())
            if s.unmapped == "keep":
                um = ~self._mapped[kg]
                kflags[um] |= int(QualityFlag.UNMAPPED)
                self.counters["unmapped"] += int(um.sum())
        stuck = self._stuck(kg, kv)
        kflags[stuck] |= int(QualityFlag.STUCK)
        self.counters["stuck"] += int(stuck.sum())
        spike = self._spikes(kg, kv)
        kflags[spike] |= int(QualityFlag.SPIKE)
        self.counters["spike"] += int(spike.sum())
        unc = quality[keep] == int(Quality.UNCERTAIN)
        kflags[unc] |= int(QualityFlag.UNCERTAIN_SOURCE)

        for reason, count in Counter(reasons[bad].tolist()).items():
            self.counters[str(reason)] += count
        self.counters["kept"] += int(keep.sum())
        if bad.any():
            details = self._details(reasons[bad], tag_col.dictionary.to_pylist(), codes[bad], ts[bad],
                                    values[bad], now_us)
            dead = dead_letters_from_samples(samples, bad, reasons[bad], details)
        else:
            dead = dead_letter_batch([])
        kept = samples if keep.all() else samples.filter(pa.array(keep))
        idx = kept.schema.get_field_index("flags")
        kept = kept.set_column(idx, kept.schema.field(idx), pa.array(kflags, type=pa.int32()))
        assert dead.schema == DEAD_LETTERS
        return kept, dead

    def _details(self, reasons: np.ndarray, tags: list[str], codes: np.ndarray, ts: np.ndarray,
                 values: np.ndarray, now_us: int) -> list[str]:
        """One line per dead letter naming the rule, the value that broke it and the setting behind it, so
        whoever reads ``dead_letters`` knows what to fix without the gate's source (rejected rows only)."""
        s = self.settings
        out = []
        for reason, code, t, v in zip(reasons.tolist(), codes.tolist(), ts.tolist(), values.tolist(),
                                      strict=True):
            tag = tags[code]
            if reason == Reason.MISSING_FIELD:
                out.append("rule missing_field: the sample has no tag or no timestamp (a codec or source "
                           "plugin let it through; its payload is kept here)")
            elif reason in (Reason.NAN, Reason.INF):
                out.append(f"rule {reason}: tag {tag!r} value {v!r} is not a finite number")
            elif reason == Reason.TS_FUTURE:
                out.append(f"rule ts_future: tag {tag!r} ts {_iso(t)} is {(t - now_us) / 1e6:.3f} s after "
                           f"now ({_iso(now_us)}); limit [quality] max_future_s = {s.max_future_s:g}")
            elif reason == Reason.TS_PAST:
                out.append(f"rule ts_past: tag {tag!r} ts {_iso(t)} is {(now_us - t) / 1e6:.3f} s before "
                           f"now ({_iso(now_us)}); limit [quality] max_past_s = {s.max_past_s:g} "
                           "(accept_past = true takes replays of history)")
            elif reason == Reason.UNMAPPED_TAG:
                out.append(f"rule unmapped_tag: tag {tag!r} is not in the tag map ([assets.tags]); map it "
                           "or set [quality] unmapped = \"keep\"")
            elif reason == Reason.DUPLICATE:
                out.append(f"rule duplicate: tag {tag!r} ts {_iso(t)} (value {v!r}) came before, in this "
                           "batch or a recent one; the first is kept ([quality] drop_duplicates)")
            else:
                out.append(f"rule {reason}: tag {tag!r} ts {_iso(t)} value {v!r}")
        return out

    def _duplicates(self, g: np.ndarray, ts: np.ndarray, live: np.ndarray) -> np.ndarray:
        """Rows whose (tag, ts) came earlier in this batch or in a recent batch (the first one stays)."""
        n = len(g)
        dup = np.zeros(n, dtype=bool)
        idx = np.flatnonzero(live)
        if len(idx) == 0:
            return dup
        # The exact (tag, ts) pair as one 16-byte key: a hash of the two collided for different pairs.
        pair = np.empty((len(idx), 2), dtype=np.int64)
        pair[:, 0] = g[idx]
        pair[:, 1] = ts[idx]
        keys = pair.view(np.dtype((np.void, 16))).ravel()
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        same = np.zeros(len(sk), dtype=bool)
        same[1:] = sk[1:] == sk[:-1]
        within = np.zeros(len(idx), dtype=bool)
        within[order] = same
        # against recent batches: only rows not newer than the tag's high-water mark can be repeats
        older = ts[idx] <= self._hwm[g[idx]]
        if older.any() and self._seen:
            cand = np.flatnonzero(older & ~within)
            seen = self._seen
            for j in cand.tolist():
                if keys[j].tobytes() in seen:
                    within[j] = True
        dup[idx[within]] = True
        fresh = keys[~within]
        np.maximum.at(self._hwm, g[idx], ts[idx])
        self._seen.update(fresh.tolist())
        self._seen_order.append(fresh)
        self._seen_count += len(fresh)
        while self._seen_count > self.duplicate_memory and len(self._seen_order) > 1:
            old = self._seen_order.popleft()
            self._seen_count -= len(old)
            self._seen.difference_update(old.tolist())
        return dup

    def _stuck(self, g: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Run length of equal values per tag, carried across batches; STUCK once it reaches N."""
        n = len(g)
        if n == 0:
            return np.zeros(0, dtype=bool)
        order = np.argsort(g, kind="stable")
        sg, sv = g[order], v[order]
        idx = np.arange(n)
        gstart = np.ones(n, dtype=bool)
        gstart[1:] = sg[1:] != sg[:-1]
        prev = np.empty(n)
        prev[1:] = sv[:-1]
        prev[gstart] = self._last_value[sg[gstart]]
        reset = sv != prev
        last_reset = np.maximum.accumulate(np.where(reset, idx, -1))
        gstart_idx = np.maximum.accumulate(np.where(gstart, idx, 0))
        run = np.where(last_reset >= gstart_idx, idx - last_reset + 1, idx - gstart_idx + 1 + self._run[sg])
        gend = np.ones(n, dtype=bool)
        gend[:-1] = sg[1:] != sg[:-1]
        self._last_value[sg[gend]] = sv[gend]
        self._run[sg[gend]] = run[gend]
        out = np.zeros(n, dtype=bool)
        out[order] = run >= self.settings.stuck_samples
        return out

    def _spikes(self, g: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Robust z-score against the median/MAD of each tag's last ``window`` values (earlier batches)."""
        n = len(g)
        if n == 0:
            return np.zeros(0, dtype=bool)
        ug, inv = np.unique(g, return_inverse=True)
        hist = self._ring[ug]
        enough = np.minimum(self._ring_n[ug], self.window) >= self.min_history
        spike = np.zeros(n, dtype=bool)
        if enough.any():
            with np.errstate(all="ignore"):
                med = np.nanmedian(hist, axis=1)
                mad = np.nanmedian(np.abs(hist - med[:, None]), axis=1)
            scale = np.maximum(_MAD_TO_SIGMA * mad, 1e-6 * (np.abs(med) + 1.0))
            z = np.abs(v - med[inv]) / scale[inv]
            spike = enough[inv] & (z > self.settings.spike_sigma)
        # remember the non-spike values in each tag's ring
        ok = ~spike
        og, ov = g[ok], v[ok]
        if len(og):
            order = np.argsort(og, kind="stable")
            sg, sv = og[order], ov[order]
            first = np.ones(len(sg), dtype=bool)
            first[1:] = sg[1:] != sg[:-1]
            start_idx = np.maximum.accumulate(np.where(first, np.arange(len(sg)), 0))
            rank = np.arange(len(sg)) - start_idx
            pos = (self._ring_n[sg] + rank) % self.window
            self._ring[sg, pos] = sv
            counts = np.bincount(sg, minlength=0)
            present = np.flatnonzero(counts)
            self._ring_n[present] += counts[present]
        return spike
