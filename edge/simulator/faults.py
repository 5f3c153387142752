"""Injected faults: what, where and when, parsed from a compact spec or drawn from a seed.

Spec: comma-separated ``KIND[:TARGET][@START[+DURATION]]`` with times in seconds from the start of the
simulation, e.g. ``bearing_wear:line1.press1@60+600,stuck_sensor:line2.press3.temperature@30+20,
server_restart@120+5``. TARGET is a machine (``line1.press1``) or a tag (``line1.press1.temperature``).
``auto`` draws a schedule from the seed, ``none`` injects nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

FaultKind = Literal["bearing_wear", "overheating", "stuck_sensor", "spikes", "dropout", "server_restart"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
# the measure a fault acts on when the spec names only a machine
DEFAULT_MEASURE: dict[str, str] = {
    "bearing_wear": "vibration",
    "overheating": "temperature",
    "stuck_sensor": "temperature",
    "spikes": "vibration",
    "dropout": "current",
}


# The shortest stuck sensor or dropout an auto schedule injects: a receiver holds a tag's last value for a
# few seconds (the appliance's max_hold_s, 5 s by default), so a shorter silence is no fault to anyone.
MIN_SENSOR_FAULT_S = 12.0


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    machine: str  # "line1.press1"; "" for plant-wide faults (server_restart)
    measure: str  # "" for plant-wide faults
    start_s: float
    end_s: float

    @property
    def tag(self) -> str:
        return f"{self.machine}.{self.measure}" if self.machine else ""

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s

    def progress(self, t_s: float) -> float:
        """0 at start, 1 at end of the fault window."""
        return min(1.0, max(0.0, (t_s - self.start_s) / max(self.end_s - self.start_s, 1e-9)))


class FaultSpecError(ValueError):
    pass


def parse_faults(spec: str, machines: list[str], *, duration_s: float | None = None,
                 seed: int = 0, start_s: float = 0.0) -> list[Fault]:
    """Faults from ``spec`` (see module doc) for a plant whose machines are ``machines``; ``start_s`` is
    where an ``auto`` schedule begins (see :func:`auto_faults`)."""
    spec = spec.strip()
    if spec in ("", "none"):
        return []
    if spec == "auto":
        return auto_faults(machines, duration_s or 600.0, seed, start_s=start_s)
    faults: list[Fault] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        head, _, when = part.partition("@")
        kind, _, target = head.partition(":")
        if kind not in FAULT_KINDS:
            raise FaultSpecError(f"unknown fault kind {kind!r} in {part!r} (kinds: {', '.join(FAULT_KINDS)})")
        start, _, dur = when.partition("+")
        try:
            start_s = float(start) if start else 0.0
            dur_s = float(dur) if dur else 60.0
        except ValueError:
            raise FaultSpecError(f"bad time in {part!r}: expected @START[+DURATION] in seconds") from None
        if kind == "server_restart":
            faults.append(Fault("server_restart", "", "", start_s, start_s + dur_s))
            continue
        if not target:
            raise FaultSpecError(f"fault {part!r} names no machine or tag (KIND:line1.press1@START+DUR)")
        if target in machines:
            machine, measure = target, DEFAULT_MEASURE[kind]
        else:
            machine, _, measure = target.rpartition(".")
            if machine not in machines:
                raise FaultSpecError(f"fault {part!r}: no machine or tag {target!r} in the plant")
        faults.append(Fault(kind, machine, measure, start_s, start_s + dur_s))  # type: ignore[arg-type]
    return faults


def auto_faults(machines: list[str], duration_s: float, seed: int, *, start_s: float = 0.0) -> list[Fault]:
    """A deterministic schedule scaled to ``duration_s``: one fault of each sensor/process kind on a
    machine drawn from the seed. A server restart is only injected when asked for explicitly. A stuck
    sensor and a dropout last at least ``MIN_SENSOR_FAULT_S`` (clipped to the end of the run).

    With ``start_s`` the schedule is scaled to ``[start_s, duration_s]`` instead: nothing before it (``edge
    demo`` keeps its first seconds fault-free, until the model has scored a few windows)."""
    rng = np.random.default_rng(seed + 7919)
    start_s = min(max(start_s, 0.0), duration_s)
    d = duration_s - start_s
    picks = [machines[int(i)] for i in rng.permutation(len(machines))]
    pick = (picks * 5)[:5]

    def span(lo: float, hi: float, least_s: float = 0.0) -> tuple[float, float]:
        begin = start_s + lo * d
        return begin, min(duration_s, max(start_s + hi * d, begin + least_s))

    return [
        Fault("bearing_wear", pick[0], "vibration", *span(0.10, 0.70)),
        Fault("overheating", pick[1], "temperature", *span(0.30, 0.80)),
        Fault("stuck_sensor", pick[2], "temperature", *span(0.20, 0.30, MIN_SENSOR_FAULT_S)),
        Fault("spikes", pick[3], "vibration", *span(0.40, 0.50)),
        Fault("dropout", pick[4], "current", *span(0.60, 0.65, MIN_SENSOR_FAULT_S)),
    ]
