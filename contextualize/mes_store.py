"""The time-versioned MES context store: per scope (an ISA-95 path) and per context key, intervals
``[valid_from, valid_to)`` with a value, in memory (the timelines of :mod:`contextualize.mes_timeline`).

Every mutation returns the :class:`~contextualize.mes_timeline.ContextChange` list it caused. Reading it
back from and writing it to the historian table ``mes_context`` is :mod:`contextualize.mes_store_sql`.

Precedence: a sample of equipment ``a/b/c/d/e`` takes each key from the most specific scope among its path
prefixes that has a value at that time (equipment overrides line overrides area...).
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from contextualize.mes_events import ALL_KEYS, STATE_KEY, MesEvent, MesEventType
from contextualize.mes_timeline import ContextChange, Interval, Timeline, diff, scope_prefixes

OPEN = np.iinfo(np.int64).max  # valid_to of an open interval in arrays


@dataclass
class KeySnapshot:
    """Arrays of one context key for the join: per scope, sorted interval starts, ends and value codes."""

    values: list[str]
    scopes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass
class StoreSnapshot:
    version: int
    keys: dict[str, KeySnapshot]


class MesContextStore:
    """Thread-safe in-memory store. Mutations return the :class:`ContextChange` list they caused."""

    def __init__(self) -> None:
        self._tl: dict[tuple[str, str], Timeline] = {}
        self._event_hash: dict[str, str] = {}
        self._event_keys: dict[str, set[tuple[str, str]]] = {}
        self._lock = threading.RLock()
        self._version = 0
        self._horizon: int | None = None
        self._snapshot: StoreSnapshot | None = None
        # filled per mutation: (scope, key) -> (lo, old tail)
        self._touched: dict[tuple[str, str], tuple[int, tuple[str | None, list[int], list[str | None]]]] = {}

    # ----- reading
    @property
    def version(self) -> int:
        return self._version

    def scopes(self, key: str | None = None) -> list[str]:
        with self._lock:
            return sorted({s for (s, k) in self._tl if key is None or k == key})

    def value_at(self, scope: str, key: str, ts_us: int) -> str | None:
        """The value of ``key`` set on exactly ``scope`` at ``ts_us`` (no precedence)."""
        with self._lock:
            tl = self._tl.get((scope, key))
            return tl.value_at(ts_us) if tl else None

    def context_at(self, asset: str, ts_us: int, keys: Sequence[str] = ALL_KEYS) -> dict[str, str | None]:
        """The effective context of ``asset`` (an equipment path) at ``ts_us``: most specific scope wins."""
        out: dict[str, str | None] = {}
        prefixes = scope_prefixes(asset)
        with self._lock:
            for key in keys:
                out[key] = None
                for scope in prefixes:
                    tl = self._tl.get((scope, key))
                    if tl is not None:
                        v = tl.value_at(ts_us)
                        if v is not None:
                            out[key] = v
                            break
        return out

    def effective_segments(
        self, asset: str, key: str, start: int, end: int | None
    ) -> list[tuple[int, int | None, str | None]]:
        """The effective value of ``key`` for ``asset`` over ``[start, end)``, as consecutive segments."""
        with self._lock:
            prefixes = [p for p in scope_prefixes(asset) if (p, key) in self._tl]
            points = {start}
            for p in prefixes:
                tl = self._tl[(p, key)]
                i = bisect_right(tl.ts, start)
                j = len(tl.ts) if end is None else bisect_left(tl.ts, end)
                points.update(tl.ts[i:j])
            ordered = sorted(points)
            segs: list[tuple[int, int | None, str | None]] = []
            for k, t in enumerate(ordered):
                v: str | None = None
                for p in prefixes:
                    v = self._tl[(p, key)].value_at(t)
                    if v is not None:
                        break
                seg_end = ordered[k + 1] if k + 1 < len(ordered) else end
                if segs and segs[-1][2] == v:
                    segs[-1] = (segs[-1][0], seg_end, v)
                else:
                    segs.append((t, seg_end, v))
            return segs

    def intervals(
        self, scope: str | None = None, key: str | None = None, since: int | None = None
    ) -> list[Interval]:
        with self._lock:
            out: list[Interval] = []
            for (s, k), tl in sorted(self._tl.items()):
                if (scope is None or s == scope) and (key is None or k == key):
                    out.extend(Interval(s, k, v, a, b, e) for a, b, v, e in tl.intervals(since))
            return out

    def open_intervals(self) -> list[Interval]:
        return [iv for iv in self.intervals() if iv.valid_to is None]

    def snapshot(self) -> StoreSnapshot:
        """Immutable arrays for the join, rebuilt only when the store changed."""
        with self._lock:
            snap = self._snapshot
            if snap is not None and snap.version == self._version:
                return snap
            keys: dict[str, KeySnapshot] = {}
            for (scope, key), tl in self._tl.items():
                # unmerged: keys set by the same events keep identical starts, and the join does them at once
                ivs = tl.intervals(merge=False)
                if not ivs:
                    continue
                ks = keys.setdefault(key, KeySnapshot(values=[]))
                codes = {v: i for i, v in enumerate(ks.values)}
                starts = np.fromiter((iv[0] for iv in ivs), dtype=np.int64, count=len(ivs))
                ends = np.fromiter(
                    (OPEN if iv[1] is None else iv[1] for iv in ivs), dtype=np.int64, count=len(ivs)
                )
                vals = np.empty(len(ivs), dtype=np.int32)
                for n, iv in enumerate(ivs):
                    c = codes.get(iv[2])
                    if c is None:
                        c = codes[iv[2]] = len(ks.values)
                        ks.values.append(iv[2])
                    vals[n] = c
                ks.scopes[scope] = (starts, ends, vals)
            snap = StoreSnapshot(self._version, keys)
            self._snapshot = snap
            return snap

    # ----- writing
    def set_value(
        self, scope: str, key: str, ts_us: int, value: str | None, event_id: str = "manual"
    ) -> list[ContextChange]:
        """From ``ts_us`` on (until the next change point) ``key`` of ``scope`` is ``value``."""
        with self._lock:
            self._set(scope, key, ts_us, value, event_id)
            return self._commit(event_id)

    def apply(self, ev: MesEvent) -> list[ContextChange]:
        """Apply one MES event. A redelivered event changes nothing; an event with a known id but new content
        replaces what the old one set (a corrected booking)."""
        h = ev.content_hash()
        with self._lock:
            prev = self._event_hash.get(ev.event_id)
            if prev == h:
                return []
            if prev is not None:
                for sk in self._event_keys.pop(ev.event_id, set()):
                    tl = self._tl[sk]
                    lo = tl.event_min(ev.event_id)
                    if lo is not None:
                        self._touch(sk, lo)
                        tl.remove_event(ev.event_id)
            self._event_hash[ev.event_id] = h
            self._apply(ev)
            return self._commit(ev.event_id)

    @property
    def horizon(self) -> int | None:
        """Closed intervals that ended before this time (us) may be missing (None: the store has them all)."""
        return self._horizon

    def load(self, intervals: Iterable[Interval], horizon: int | None = None) -> None:
        """Restore intervals (from the historian at start). Replaces whatever the store held. ``horizon``:
        closed intervals ending before it were left out."""
        with self._lock:
            self._tl.clear()
            self._horizon = horizon
            for iv in sorted(intervals, key=lambda x: (x.scope, x.key, x.valid_from)):
                tl = self._tl.setdefault((iv.scope, iv.key), Timeline())
                if iv.valid_to is not None:  # a following interval that starts there replaces this point
                    tl.set_point(iv.valid_to, None, iv.event_id)
                tl.set_point(iv.valid_from, iv.value, iv.event_id)
                self._event_keys.setdefault(iv.event_id, set()).add((iv.scope, iv.key))
            self._version += 1

    def add_history(self, intervals: Iterable[Interval], horizon: int | None) -> None:
        """Merge older closed intervals (read back from the historian) in; the horizon moves back to
        ``horizon``."""
        with self._lock:
            for iv in sorted(intervals, key=lambda x: (x.scope, x.key, x.valid_from)):
                tl = self._tl_for(iv.scope, iv.key)
                if iv.valid_to is not None:
                    i = bisect_left(tl.ts, iv.valid_to)
                    if not (i < len(tl.ts) and tl.ts[i] == iv.valid_to):
                        tl.set_point(iv.valid_to, None, iv.event_id)
                tl.set_point(iv.valid_from, iv.value, iv.event_id)
                self._event_keys.setdefault(iv.event_id, set()).add((iv.scope, iv.key))
            self._horizon = horizon
            self._version += 1

    def remember_event(self, event_id: str, content_hash: str) -> None:
        """Mark an event as already applied (for duplicates after a restart)."""
        with self._lock:
            self._event_hash[event_id] = content_hash

    # ----- internals
    def _tl_for(self, scope: str, key: str) -> Timeline:
        tl = self._tl.get((scope, key))
        if tl is None:
            tl = self._tl[(scope, key)] = Timeline()
        return tl

    def _touch(self, sk: tuple[str, str], lo: int) -> None:
        got = self._touched.get(sk)
        if got is not None and got[0] <= lo:
            return
        tl = self._tl_for(*sk)
        if got is None:
            self._touched[sk] = (lo, tl.tail(lo))
        else:  # extend the saved old tail backwards: points in [lo, got_lo) are still unchanged
            _, (_, o_ts, o_vals) = got
            before, ts, vals = tl.tail(lo)
            i = bisect_left(ts, got[0])
            self._touched[sk] = (lo, (before, ts[:i] + o_ts, vals[:i] + o_vals))

    def _set(self, scope: str, key: str, ts: int, value: str | None, event_id: str) -> None:
        self._touch((scope, key), ts)
        self._tl_for(scope, key).set_point(ts, value, event_id)
        self._event_keys.setdefault(event_id, set()).add((scope, key))

    def _set_range(self, scope: str, key: str, a: int, b: int | None, value: str, event_id: str) -> None:
        self._touch((scope, key), a)
        tl = self._tl_for(scope, key)
        if b is not None and b not in tl.ts:
            tl.set_point(b, tl.value_at(b), tl.event_at(b))
        tl.remove_range(a, b)
        tl.set_point(a, value, event_id)
        self._event_keys.setdefault(event_id, set()).add((scope, key))

    def _apply(self, ev: MesEvent) -> None:
        s, t, eid = ev.scope, ev.ts_us, ev.event_id
        match ev.type:
            case MesEventType.WORK_ORDER_STARTED:
                self._set(s, "work_order", t, ev.work_order, eid)
                self._set(s, STATE_KEY, t, "running", eid)
                for k in ("product", "batch"):
                    if getattr(ev, k) is not None:
                        self._set(s, k, t, getattr(ev, k), eid)
            case MesEventType.WORK_ORDER_HELD:
                self._set(s, STATE_KEY, t, "held", eid)
            case MesEventType.WORK_ORDER_RESUMED:
                self._set(s, STATE_KEY, t, "running", eid)
            case MesEventType.WORK_ORDER_COMPLETED:
                current = self.value_at(s, "work_order", t)
                if ev.work_order is None or current == ev.work_order:
                    for k in ("work_order", STATE_KEY, "product", "batch"):
                        self._set(s, k, t, None, eid)
            case MesEventType.PRODUCT:
                self._set(s, "product", t, ev.product, eid)
            case MesEventType.BATCH:
                self._set(s, "batch", t, ev.batch, eid)
            case MesEventType.SHIFT_CHANGE:
                self._set(s, "shift", t, ev.shift, eid)
            case MesEventType.CORRECTION:
                tl = self._tl.get((s, "work_order"))
                spans = [(a, b) for a, b, v, _ in (tl.intervals() if tl else []) if v == ev.work_order]
                for k in ("product", "batch"):
                    value = getattr(ev, k)
                    if value is not None:
                        for a, b in spans:
                            self._set_range(s, k, a, b, value, eid)

    def _commit(self, event_id: str) -> list[ContextChange]:
        changes: list[ContextChange] = []
        for (scope, key), (lo, old) in self._touched.items():
            changes.extend(diff(scope, key, lo, old, self._tl[(scope, key)].tail(lo), event_id))
        self._touched.clear()
        if changes:
            self._version += 1
        return changes
