"""Change points and intervals of one context key on one scope, and the diff that says what a change did.

Each (scope, key) is a timeline of *change points* (time, value or None for "nothing"); intervals
``[valid_from, valid_to)`` are what lies between consecutive points. A late event inserts a point in the past
and the intervals after it re-derive; :func:`diff` compares two tails of a timeline and reports exactly the
ranges whose value changed (:class:`ContextChange`), which is what the historian relabel needs.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from contextualize.mes_events import us_to_dt


@dataclass(frozen=True)
class Interval:
    scope: str
    key: str
    value: str
    valid_from: int  # us UTC
    valid_to: int | None  # None: open
    event_id: str = ""


@dataclass(frozen=True)
class ContextChange:
    """Over ``[start, end)`` of ``scope`` the value of ``key`` went from ``old`` to ``new``."""

    scope: str
    key: str
    start: int
    end: int | None
    old: str | None
    new: str | None
    event_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "key": self.key,
            "old": self.old,
            "new": self.new,
            "event_id": self.event_id,
            "valid_from": us_to_dt(self.start).isoformat(),
            "valid_to": None if self.end is None else us_to_dt(self.end).isoformat(),
        }


class Timeline:
    """Sorted change points of one (scope, key)."""

    __slots__ = ("events", "ts", "values")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.values: list[str | None] = []
        self.events: list[str] = []

    def value_at(self, t: int) -> str | None:
        i = bisect_right(self.ts, t) - 1
        return self.values[i] if i >= 0 else None

    def event_at(self, t: int) -> str:
        i = bisect_right(self.ts, t) - 1
        return self.events[i] if i >= 0 else ""

    def set_point(self, t: int, value: str | None, event_id: str) -> None:
        i = bisect_left(self.ts, t)
        if i < len(self.ts) and self.ts[i] == t:
            self.values[i] = value
            self.events[i] = event_id
        else:
            self.ts.insert(i, t)
            self.values.insert(i, value)
            self.events.insert(i, event_id)

    def remove_range(self, a: int, b: int | None) -> None:
        i = bisect_left(self.ts, a)
        j = len(self.ts) if b is None else bisect_left(self.ts, b)
        del self.ts[i:j], self.values[i:j], self.events[i:j]

    def event_min(self, event_id: str) -> int | None:
        return min((t for t, e in zip(self.ts, self.events, strict=True) if e == event_id), default=None)

    def remove_event(self, event_id: str) -> None:
        keep = [k for k, e in enumerate(self.events) if e != event_id]
        self.ts = [self.ts[k] for k in keep]
        self.values = [self.values[k] for k in keep]
        self.events = [self.events[k] for k in keep]

    def tail(self, lo: int) -> tuple[str | None, list[int], list[str | None]]:
        """The value just before ``lo`` and the points at or after it (a copy)."""
        i = bisect_left(self.ts, lo)
        before = self.values[i - 1] if i > 0 else None
        return before, self.ts[i:], self.values[i:]

    def intervals(self, since: int | None = None, merge: bool = True
                  ) -> list[tuple[int, int | None, str, str]]:
        """Intervals (start, end or None, value, event id of the start) with a value, ending after ``since``
        (or all). ``merge``: consecutive points with the same value make one interval."""
        out: list[tuple[int, int | None, str, str]] = []
        cur: list[Any] | None = None
        for t, v, e in zip(self.ts, self.values, self.events, strict=True):
            if cur is not None:
                if merge and v == cur[2]:
                    continue
                cur[1] = t
                out.append((cur[0], cur[1], cur[2], cur[3]))
                cur = None
            if v is not None:
                cur = [t, None, v, e]
        if cur is not None:
            out.append((cur[0], None, cur[2], cur[3]))
        if since is not None:
            out = [iv for iv in out if iv[1] is None or iv[1] >= since]
        return out


def diff(
    scope: str,
    key: str,
    lo: int,
    old: tuple[str | None, list[int], list[str | None]],
    new: tuple[str | None, list[int], list[str | None]],
    event_id: str,
) -> list[ContextChange]:
    """Ranges at or after ``lo`` where the value changed between two tails of the same timeline."""
    o_before, o_ts, o_vals = old
    n_before, n_ts, n_vals = new
    points = sorted({lo, *o_ts, *n_ts})
    changes: list[ContextChange] = []

    def at(before: str | None, ts: list[int], vals: list[str | None], t: int) -> str | None:
        i = bisect_right(ts, t) - 1
        return vals[i] if i >= 0 else before

    pending: list[Any] | None = None
    for t in points:
        ov, nv = at(o_before, o_ts, o_vals, t), at(n_before, n_ts, n_vals, t)
        if ov == nv:
            if pending is not None:
                changes.append(ContextChange(scope, key, pending[0], t, pending[1], pending[2], event_id))
                pending = None
            continue
        if pending is not None and (pending[1], pending[2]) == (ov, nv):
            continue
        if pending is not None:
            changes.append(ContextChange(scope, key, pending[0], t, pending[1], pending[2], event_id))
        pending = [t, ov, nv]
    if pending is not None:
        changes.append(ContextChange(scope, key, pending[0], None, pending[1], pending[2], event_id))
    return changes


def scope_prefixes(asset: str) -> list[str]:
    """``a/b/c`` -> ``["a/b/c", "a/b", "a"]`` (most specific first)."""
    parts = asset.strip("/").split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
