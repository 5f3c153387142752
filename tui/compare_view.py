"""The compare panel's view model: the result of ``edge models compare`` (``inference.compare.compare``) as
frozen dataclasses, total and sliced by shift, product and equipment, with the detection delays.

The TUI does not compute the figures: the app wires ``inference.compare.compare`` in as a
:data:`Comparer` (the TUI may not import ``inference``), and this module only reads its result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# (dsn, model, since, until) -> the result dict of ``inference.compare.compare``; ValueError when there is
# nothing to compare (no challenger in shadow over the period)
Comparer = Callable[[str, str, datetime, datetime], dict[str, Any]]

PERIODS: tuple[tuple[str, timedelta], ...] = (
    ("1 h", timedelta(hours=1)), ("24 h", timedelta(hours=24)), ("7 d", timedelta(days=7)),
)
SLICE_KEYS: tuple[tuple[str, str], ...] = (("shift", "shift"), ("product", "product"), ("asset", "equipment"))


@dataclass(frozen=True)
class RoleFigures:
    windows: int
    alarm_rate: float | None
    precision: float | None
    recall: float | None


@dataclass(frozen=True)
class CompareBlock:
    windows: int
    agreement: float | None
    champion: RoleFigures
    challenger: RoleFigures
    delays_s: tuple[tuple[str, tuple[float | None, ...]], ...] = ()  # of the labelled faults begun in a slice


@dataclass(frozen=True)
class CompareView:
    model: str
    since: datetime
    until: datetime
    champion_version: str | None = None
    challenger_version: str | None = None
    paired_windows: int = 0
    true_fault_periods: int = 0
    total: CompareBlock | None = None
    slices: tuple[tuple[str, tuple[tuple[str, CompareBlock], ...]], ...] = ()
    delays_s: tuple[tuple[str, tuple[float | None, ...]], ...] = ()  # per role, one per labelled fault
    message: str | None = None  # why there is nothing to compare

    def slice(self, key: str) -> tuple[tuple[str, CompareBlock], ...]:
        return next((rows for k, rows in self.slices if k == key), ())

    @property
    def by_asset(self) -> tuple[tuple[str, CompareBlock], ...]:
        return self.slice("asset")

    def delays(self, role: str) -> tuple[float | None, ...]:
        return next((d for r, d in self.delays_s if r == role), ())


def _role(d: Mapping[str, Any]) -> RoleFigures:
    return RoleFigures(int(d.get("windows") or 0), d.get("alarm_rate"), d.get("precision"), d.get("recall"))


def _delays(d: Mapping[str, Any]) -> tuple[tuple[str, tuple[float | None, ...]], ...]:
    return tuple((role, tuple(v)) for role, v in (d.get("detection_delay_s") or {}).items())


def _block(d: Mapping[str, Any]) -> CompareBlock:
    return CompareBlock(int(d.get("windows") or 0), d.get("agreement"), _role(d.get("champion") or {}),
                        _role(d.get("challenger") or {}), _delays(d))


def from_result(model: str, since: datetime, until: datetime, res: Mapping[str, Any]) -> CompareView:
    """The view of one ``inference.compare.compare`` result."""
    slices = tuple(
        (key, tuple((str(v), _block(b)) for v, b in (res.get("slices") or {}).get(key, {}).items()))
        for key, _ in SLICE_KEYS
    )
    delays = _delays(res)
    return CompareView(
        model, since, until, res.get("champion_version"), res.get("challenger_version"),
        int(res.get("paired_windows") or 0), int(res.get("true_fault_periods") or 0), _block(res), slices,
        delays,
    )


def nothing(model: str, since: datetime, until: datetime, why: str) -> CompareView:
    return CompareView(model, since, until, message=why)
