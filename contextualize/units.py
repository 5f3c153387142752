"""Units: one canonical unit per measure, conversions worked out by pint and applied to whole arrays.

A conversion between two linear units is an affine map ``y = (x - zero) * mul / div``. It is computed once per
tag, in decimal arithmetic through pint, so its constants are the nearest floats to the exact ones, and then
applied to numpy arrays: nothing is done per sample. Where the factor is the reciprocal of a whole
number (``kPa`` to ``bar`` is ``/ 100``), the map divides instead of multiplying, which keeps results
correctly rounded (250 kPa is exactly 2.5 bar, 212 degF exactly 100 degC).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

# Canonical unit of each measure the appliance knows out of the box; a site may add its own under
# ``[assets.measures]`` (see firmware-config/README.md).
DEFAULT_MEASURES: dict[str, str] = {
    "vibration": "mm/s",  # RMS velocity, as ISO 10816 / 20816 reads it
    "acceleration": "m/s**2",
    "temperature": "degC",
    "current": "A",
    "voltage": "V",
    "pressure": "bar",
    "power": "kW",
    "energy": "kWh",
    "speed": "rpm",
    "flow": "m**3/h",
    "level": "percent",
    "count": "count",
    "state": "dimensionless",
}


class UnitError(ValueError):
    """A unit pint does not know, or two units that cannot be converted into each other."""


_lock = threading.Lock()
_registry: Any = None


def registry() -> Any:
    """The process's pint registry (decimal arithmetic; made on first use, about 0.3 s)."""
    global _registry
    with _lock:
        if _registry is None:
            import pint

            _registry = pint.UnitRegistry(non_int_type=Decimal)
        return _registry


def _unit(text: str) -> Any:
    reg = registry()
    try:
        return reg.Unit(text)
    except Exception as exc:  # pint raises UndefinedUnitError, but also parse errors of several kinds
        raise UnitError(f"unknown unit {text!r} (pint does not define it: {type(exc).__name__})") from None


def check_unit(text: str) -> None:
    """Raise :class:`UnitError` if pint does not know ``text``."""
    _unit(text)


def dimensionality(text: str) -> str:
    return str(_unit(text).dimensionality)


@dataclass(frozen=True)
class Affine:
    """``y = (x - zero) * mul / div``: one of ``mul`` and ``div`` is 1."""

    zero: float = 0.0
    mul: float = 1.0
    div: float = 1.0

    @property
    def identity(self) -> bool:
        return self.zero == 0.0 and self.mul == 1.0 and self.div == 1.0

    def apply(self, values: npt.ArrayLike) -> F64:
        x = np.asarray(values, dtype=np.float64)
        if self.identity:
            return x.copy()
        if self.zero != 0.0:
            x = x - self.zero
        if self.mul != 1.0:
            x = x * self.mul
        if self.div != 1.0:
            x = x / self.div
        return np.asarray(x, dtype=np.float64)

    def apply_scalar(self, value: float) -> float:
        return float(self.apply(np.array([value]))[0])


def affine(src: str, dst: str) -> Affine:
    """The conversion from unit ``src`` to unit ``dst``; :class:`UnitError` if there is none."""
    s, d = _unit(src), _unit(dst)
    if s == d:
        return Affine()
    reg = registry()
    q = reg.Quantity
    try:
        zero = q(Decimal(0), d).to(s).magnitude  # the source value that is 0 in dst
        y0 = q(Decimal(0), s).to(d).magnitude
        y1 = q(Decimal(1), s).to(d).magnitude
        y2 = q(Decimal(2), s).to(d).magnitude
    except Exception as exc:
        if type(exc).__name__ == "DimensionalityError":
            raise UnitError(
                f"unit {src!r} ({s.dimensionality}) cannot be converted to {dst!r} ({d.dimensionality})"
            ) from None
        raise UnitError(f"no conversion from {src!r} to {dst!r}: {exc}") from None
    factor = Decimal(y1) - Decimal(y0)
    if factor == 0 or abs((Decimal(y2) - Decimal(y1)) - factor) > abs(factor) * Decimal("1e-20"):
        raise UnitError(f"conversion from {src!r} to {dst!r} is not linear; use a linear unit")
    inv = 1 / factor
    whole = inv.to_integral_value()
    if whole != 0 and abs(inv - whole) <= abs(inv) * Decimal("1e-20"):
        return Affine(zero=float(zero), mul=1.0, div=float(whole))
    return Affine(zero=float(zero), mul=float(factor), div=1.0)


def convert(values: npt.ArrayLike, src: str, dst: str) -> F64:
    """Convert an array from ``src`` to ``dst`` (for tests, the simulator and one-off use)."""
    return affine(src, dst).apply(values)
