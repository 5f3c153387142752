"""The simulated plant: N lines x M machines, four tags each, stepped at a fixed rate, seeded.

The tag list is made in one place, :func:`plant_tags`; OPC-UA serving (``opcua_server``) and MQTT
publishing use it and :meth:`Plant.step`::

    plant = Plant(PlantConfig(lines=2, machines=3, seed=1))
    for tag in plant.tags: tag.name, tag.asset, tag.measure, tag.unit   # "line1.press1.vibration", ...
    tick = plant.step()            # tick.ts_us, tick.values[i] for plant.tags[i], tick.valid[i]
    for ts_us, tags, values in plant.samples(100): ...   # columnar arrays per tick, dropouts removed

Faults (``faults.Fault``) change the signals; their ground truth goes to a JSON-lines labels file.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from edge.simulator import signals
from edge.simulator.faults import Fault

MEASURES: tuple[tuple[str, str], ...] = (
    ("vibration", "mm/s"),
    ("temperature", "degC"),
    ("current", "A"),
    ("pressure", "bar"),
)
N_MEASURES = len(MEASURES)
# published unit -> (scale, offset) from the canonical unit of its measure
UNIT_CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("degC", "degF"): (9.0 / 5.0, 32.0),
    ("bar", "kPa"): (100.0, 0.0),
    ("bar", "psi"): (14.503773773, 0.0),
    ("bar", "MPa"): (0.1, 0.0),
    ("mm/s", "in/s"): (1 / 25.4, 0.0),
}
# The demo site as firmware-config/assets/demo-site.toml models it (tests/edge/simulator/test_simulator.py
# keeps the two in
# step): area "packaging", one cell per press, line 2 a US-made line publishing degF and psi, and three
# pressure transmitters in kPa. Patterns are fnmatch patterns on tag names.
DEMO_SITE_UNITS: tuple[tuple[str, str], ...] = (
    ("line2.*.temperature", "degF"),
    ("line1.press3.pressure", "kPa"),
    ("line2.press2.pressure", "psi"),
    ("line2.press3.pressure", "kPa"),
)
# scale of a spike per measure (about 10 sigma of the signal's normal variation)
SPIKE_SCALE = np.array([12.0, 25.0, 40.0, 120.0])
NOISE = np.array([0.08, 0.15, 0.4, 1.0])


@dataclass(frozen=True)
class SimTag:
    """One simulated tag. ``name`` is also the OPC-UA string node id (``nsu=urn:factory-edge:sim;s=NAME``)."""

    name: str  # line1.press1.vibration
    asset: str  # ISA-95 path: enterprise/site/area/line/equipment
    line: str  # line1
    machine: str  # line1.press1
    measure: str  # vibration
    unit: str  # mm/s
    index: int  # position in Plant.tags and in tick.values


def machine_names(lines: int, machines: int, kind: str = "press") -> list[str]:
    return [f"line{i}.{kind}{j}" for i in range(1, lines + 1) for j in range(1, machines + 1)]


def published_unit(tag: str, canonical: str, units: tuple[tuple[str, str], ...]) -> str:
    for pattern, unit in units:
        if fnmatch.fnmatchcase(tag, pattern) and (canonical, unit) in UNIT_CONVERSIONS:
            return unit
    return canonical


def plant_tags(lines: int = 2, machines: int = 3, *, enterprise: str = "acme", site: str = "plant1",
               area: str = "area1", kind: str = "press", cells: bool = False,
               units: tuple[tuple[str, str], ...] = ()) -> list[SimTag]:
    """Every tag of the plant, machine by machine, measures in :data:`MEASURES` order.

    ``asset`` is enterprise/site/area/line[/cellN]/equipment; ``unit`` is the unit the tag is published in
    (the measure's canonical unit unless a ``units`` pattern names another)."""
    tags: list[SimTag] = []
    for machine in machine_names(lines, machines, kind):
        line, equipment = machine.split(".")
        cell = f"cell{equipment[len(kind):]}/" if cells else ""
        asset = f"{enterprise}/{site}/{area}/{line}/{cell}{equipment}"
        for measure, canonical in MEASURES:
            name = f"{machine}.{measure}"
            unit = published_unit(name, canonical, units)
            tags.append(SimTag(name, asset, line, machine, measure, unit, len(tags)))
    return tags


@dataclass(frozen=True)
class PlantConfig:
    lines: int = 2
    machines: int = 3
    rate_hz: float = 10.0
    seed: int = 0
    enterprise: str = "acme"
    site: str = "plant1"
    area: str = "area1"
    kind: str = "press"
    cells: bool = False  # a cell level per machine in the asset path (line1/cell2/press2)
    units: tuple[tuple[str, str], ...] = ()  # (tag pattern, published unit); default canonical units
    faults: tuple[Fault, ...] = ()
    # the noise's own seed: the same machines (cycle, load, wear: drawn from ``seed``) on another day
    noise_seed: int | None = None
    # what the machines make, as (from_s, product, load shift): a product runs from its from_s (seconds since
    # the start) until the next one's; its load shift moves every machine's base load (a heavier part draws
    # more current, shakes more). Empty: one product, no shift
    products: tuple[tuple[float, str, float], ...] = ()

    @classmethod
    def demo_site(cls, **overrides: object) -> PlantConfig:
        """The plant as firmware-config's demo site models it (area, cells, published units)."""
        base: dict[str, object] = {"area": "packaging", "cells": True, "units": DEMO_SITE_UNITS}
        return cls(**{**base, **overrides})  # type: ignore[arg-type]


@dataclass
class Tick:
    k: int  # tick number from 0
    t_s: float  # seconds since the start of the simulation
    ts_us: int  # UTC microseconds
    values: npt.NDArray[np.float64]  # one per tag, in Plant.tags order (NaN where not valid)
    valid: npt.NDArray[np.bool_]  # False where a dropout withholds the value


@dataclass
class _Label:
    fault: Fault
    written: bool = False


@dataclass
class Plant:
    config: PlantConfig = field(default_factory=PlantConfig)
    start_us: int | None = None
    labels_path: Path | None = None

    def __post_init__(self) -> None:
        c = self.config
        if self.start_us is None:
            self.start_us = int(time.time() * 1e6)
        self.tags = plant_tags(c.lines, c.machines, enterprise=c.enterprise, site=c.site, area=c.area,
                               kind=c.kind, cells=c.cells, units=c.units)
        canon = dict(MEASURES)
        conv = [UNIT_CONVERSIONS.get((canon[t.measure], t.unit), (1.0, 0.0)) for t in self.tags]
        self._scale = np.array([s for s, _ in conv])
        self._offset = np.array([o for _, o in conv])
        self._convert = any(s != 1.0 or o != 0.0 for s, o in conv)
        self.tag_names = [t.name for t in self.tags]
        self.machines = machine_names(c.lines, c.machines, c.kind)
        self.dt_s = 1.0 / c.rate_hz
        n = len(self.machines)
        self._rng = np.random.default_rng(c.seed)
        self._period = self._rng.uniform(40.0, 160.0, n)  # production cycle per machine (s)
        self._phase = self._rng.uniform(0, 2 * np.pi, n)
        self._base = self._rng.uniform(0.45, 0.7, n)
        self._base_wear = self._rng.uniform(0.02, 0.12, n)
        self._ou = np.zeros(n)
        if c.noise_seed is not None:
            self._rng = np.random.default_rng(c.noise_seed)
        self._temp = self._settled_temperature()
        self._held: dict[int, float] = {}  # tag index -> value a stuck sensor repeats
        self._k = 0
        m_index = {m: i for i, m in enumerate(self.machines)}
        self._faults = [(f, m_index.get(f.machine, -1),
                         m_index.get(f.machine, 0) * N_MEASURES
                         + [m for m, _ in MEASURES].index(f.measure) if f.machine else -1)
                        for f in c.faults]
        self._labels = [_Label(f) for f in c.faults]
        self._labels_fh: IO[str] | None = None
        if self.labels_path is not None:
            self.labels_path.parent.mkdir(parents=True, exist_ok=True)
            self._labels_fh = self.labels_path.open("a")

    # -- signals ---------------------------------------------------------------------------------
    def _load(self, t_s: float) -> npt.NDArray[np.float64]:
        cyc = 0.3 * np.sin(2 * np.pi * t_s / self._period + self._phase)
        shift = self._product_run(t_s)[1]
        return np.asarray(np.clip(self._base + shift + cyc + self._ou, 0.05, 1.0), dtype=np.float64)

    def _product_run(self, t_s: float) -> tuple[str | None, float]:
        current: tuple[str | None, float] = (None, 0.0)
        for from_s, product, shift in self.config.products:
            if from_s <= t_s:
                current = (product, shift)
        return current

    def product_at(self, t_s: float) -> str | None:
        """The product the machines make at ``t_s`` (``PlantConfig.products``); None when none is set."""
        return self._product_run(t_s)[0]

    def _settled_temperature(self, tau_multiples: float = 6.0, dt_s: float = 1.0) -> npt.NDArray[np.float64]:
        """The motors' temperature at t=0 as if the plant had been running its cycle for a while: the
        thermal model run noise-free over the load of the ``tau_multiples`` time constants before 0 (no
        random draws, so the seeded signals are unchanged). Starting at the steady temperature of the
        instantaneous load instead left a machine whose cycle began at a peak 10-15 K above its settled
        range for the first minutes: a start-up transient a baseline model rightly flags."""
        horizon = tau_multiples * signals.MOTOR.tau_s
        temp = signals.steady_temperature(self._load(-horizon))
        for t in np.arange(-horizon, 0.0, dt_s):
            temp = signals.thermal_step(temp, signals.motor_current(self._load(float(t))), dt_s)
        return temp

    @property
    def t_s(self) -> float:
        return self._k * self.dt_s

    def step(self) -> Tick:
        """Advance one tick (``1 / rate_hz`` seconds) and return every tag's value at it."""
        k = self._k
        t = k * self.dt_s
        n = len(self.machines)
        rng = self._rng
        self._ou += -self._ou * self.dt_s / 20.0 + 0.03 * np.sqrt(self.dt_s) * rng.normal(size=n)
        load = self._load(t)
        wear = self._base_wear.copy()
        extra_heat = np.zeros(n)
        for f, mi, _ in self._faults:
            if not f.active(t):
                continue
            if f.kind == "bearing_wear":
                wear[mi] = max(wear[mi], f.progress(t))
            elif f.kind == "overheating":
                extra_heat[mi] += 60.0 * f.progress(t)
        current = signals.motor_current(load)
        self._temp = signals.thermal_step(self._temp, current, self.dt_s, extra_heat)
        vals = np.empty((n, N_MEASURES))
        vals[:, 0] = signals.vibration_rms(load, wear)
        vals[:, 1] = self._temp
        vals[:, 2] = current
        vals[:, 3] = signals.pressure(load, t)
        vals += rng.normal(size=(n, N_MEASURES)) * NOISE
        values = vals.reshape(-1)
        valid = np.ones(values.size, dtype=np.bool_)
        spikes = rng.random(len(self._faults))
        signs = rng.choice((-1.0, 1.0), len(self._faults))
        for i, (f, _, ti) in enumerate(self._faults):
            if not f.active(t):
                if ti in self._held and f.kind == "stuck_sensor":
                    del self._held[ti]
                self._maybe_write_label(i, t)
                continue
            if f.kind == "stuck_sensor":
                values[ti] = self._held.setdefault(ti, float(values[ti]))
            elif f.kind == "spikes" and spikes[i] < 0.1:
                values[ti] += signs[i] * SPIKE_SCALE[ti % N_MEASURES] * (1.0 + spikes[i] * 5)
            elif f.kind == "dropout":
                valid[ti] = False
                values[ti] = np.nan
        if self._convert:
            values = values * self._scale + self._offset
        self._k += 1
        assert self.start_us is not None
        return Tick(k, t, self.start_us + round(t * 1e6), values, valid)

    def samples(self, n_ticks: int) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.str_],
                                                      npt.NDArray[np.float64]]]:
        """``n_ticks`` ticks as columnar arrays (ts_us, tag, value), withheld values left out."""
        names = np.array(self.tag_names)
        for _ in range(n_ticks):
            tick = self.step()
            yield (np.full(int(tick.valid.sum()), tick.ts_us, dtype=np.int64), names[tick.valid],
                   tick.values[tick.valid])

    def tag(self, name: str) -> SimTag:
        return self.tags[self.tag_names.index(name)]

    def waveform(self, machine: str, n: int, fs_hz: float = 12_000.0) -> npt.NDArray[np.float64]:
        """Raw vibration waveform of ``machine`` at the current wear and load (for feature tests)."""
        mi = self.machines.index(machine)
        t = self.t_s
        wear = float(self._base_wear[mi])
        for f, fmi, _ in self._faults:
            if f.kind == "bearing_wear" and fmi == mi and f.active(t):
                wear = max(wear, f.progress(t))
        return signals.vibration_waveform(n, fs_hz, load=float(self._load(t)[mi]), wear=wear,
                                          seed=self.config.seed + mi, t0_s=t)

    # -- ground truth ------------------------------------------------------------------------------
    @property
    def faults(self) -> list[Fault]:
        return list(self.config.faults)

    def active_faults(self, t_s: float | None = None) -> list[Fault]:
        t = self.t_s if t_s is None else t_s
        return [f for f in self.config.faults if f.active(t)]

    def label_record(self, fault: Fault, end_s: float | None = None) -> dict[str, object]:
        assert self.start_us is not None
        end = fault.end_s if end_s is None else min(end_s, fault.end_s)
        start_us = self.start_us + round(fault.start_s * 1e6)
        end_us = self.start_us + round(end * 1e6)
        asset = self.tags[self.tag_names.index(fault.tag)].asset if fault.tag else ""
        return {
            "kind": fault.kind,
            "asset": asset,
            "machine": fault.machine,
            "tag": fault.tag,
            "start": _iso(start_us),
            "end": _iso(end_us),
            "start_us": start_us,
            "end_us": end_us,
            "seed": self.config.seed,
        }

    def _maybe_write_label(self, i: int, t: float) -> None:
        lab = self._labels[i]
        if not lab.written and t >= lab.fault.end_s:
            self._write_label(lab, None)

    def _write_label(self, lab: _Label, end_s: float | None) -> None:
        lab.written = True
        if self._labels_fh is not None:
            self._labels_fh.write(json.dumps(self.label_record(lab.fault, end_s)) + "\n")
            self._labels_fh.flush()

    def close(self) -> None:
        """Write the labels of faults that started but have not ended (clipped to now); close the file."""
        t = self.t_s
        for lab in self._labels:
            if not lab.written and lab.fault.start_s < t:
                self._write_label(lab, t)
        if self._labels_fh is not None:
            self._labels_fh.close()
            self._labels_fh = None


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds")
