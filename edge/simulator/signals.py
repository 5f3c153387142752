"""Physical signal models of the simulated plant, vectorised over machines.

* Vibration: a motor shaft at ``shaft_hz`` on a rolling bearing (6205 geometry by default). The raw
  acceleration carries the 1x and 2x shaft orders plus the outer- and inner-race fault frequencies
  (BPFO, BPFI) and their harmonics, whose amplitudes grow with bearing ``wear`` (0 new, 1 failing).
  The 10 Hz tag is the RMS velocity (mm/s, as ISO 10816 reads it) of that spectrum plus measurement noise.
* Motor current follows the load: ``I = I_idle + (I_full - I_idle) * load``.
* Motor temperature: a first-order thermal model heated by copper losses (``R I^2``) and cooled to ambient
  with time constant ``tau``; a cooling fault adds heat.
* Pressure (hydraulic, bar) follows the load with a small pump ripple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BearingGeometry:
    """Rolling bearing geometry (defaults: SKF 6205, the CWRU test bearing)."""

    n_balls: int = 9
    ball_d_mm: float = 7.94
    pitch_d_mm: float = 39.04
    contact_deg: float = 0.0

    def bpfo(self, shaft_hz: float) -> float:
        """Ball pass frequency, outer race (Hz)."""
        r = self.ball_d_mm / self.pitch_d_mm * math.cos(math.radians(self.contact_deg))
        return self.n_balls / 2.0 * shaft_hz * (1.0 - r)

    def bpfi(self, shaft_hz: float) -> float:
        """Ball pass frequency, inner race (Hz)."""
        r = self.ball_d_mm / self.pitch_d_mm * math.cos(math.radians(self.contact_deg))
        return self.n_balls / 2.0 * shaft_hz * (1.0 + r)


BEARING = BearingGeometry()
HARMONICS = 3  # fault-frequency harmonics modelled


def vibration_components(shaft_hz: float, load: float, wear: float,
                         geometry: BearingGeometry = BEARING) -> list[tuple[float, float]]:
    """(frequency Hz, velocity amplitude mm/s peak) of each spectral line for one machine."""
    lines = [(shaft_hz, 1.6 + 0.8 * load), (2 * shaft_hz, 0.6 + 0.3 * load)]
    bpfo, bpfi = geometry.bpfo(shaft_hz), geometry.bpfi(shaft_hz)
    for h in range(1, HARMONICS + 1):
        # outer-race defects dominate wear; amplitudes fall with harmonic order
        lines.append((h * bpfo, 6.0 * wear**1.5 / h))
        lines.append((h * bpfi, 3.0 * wear**2 / h))
    return lines


def vibration_rms(load: F64, wear: F64, noise_mm_s: float = 0.15) -> F64:
    """RMS velocity (mm/s) of the spectrum of :func:`vibration_components`, vectorised over machines."""
    power = (1.6 + 0.8 * load) ** 2 / 2 + (0.6 + 0.3 * load) ** 2 / 2 + noise_mm_s**2
    h = np.arange(1, HARMONICS + 1, dtype=np.float64)
    inv_h2 = float(np.sum(1.0 / h**2))
    power = power + (6.0 * wear**1.5) ** 2 / 2 * inv_h2 + (3.0 * wear**2) ** 2 / 2 * inv_h2
    return np.asarray(np.sqrt(power), dtype=np.float64)


def vibration_waveform(
    n: int,
    fs_hz: float,
    *,
    shaft_hz: float = 24.7,
    load: float = 0.6,
    wear: float = 0.0,
    noise_mm_s: float = 0.15,
    t0_s: float = 0.0,
    seed: int = 0,
    geometry: BearingGeometry = BEARING,
) -> F64:
    """Raw velocity waveform (mm/s) of ``n`` samples at ``fs_hz``, for feature tests (FFT bands, envelope)."""
    rng = np.random.default_rng(seed)
    t = t0_s + np.arange(n, dtype=np.float64) / fs_hz
    x = rng.normal(0.0, noise_mm_s, n)
    for freq, amp in vibration_components(shaft_hz, load, wear, geometry):
        if amp > 0 and freq < fs_hz / 2:
            x += amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return x


@dataclass(frozen=True)
class MotorParams:
    i_idle_a: float = 8.0
    i_full_a: float = 42.0
    t_ambient_c: float = 24.0
    tau_s: float = 120.0  # thermal time constant
    heat_c_per_a2: float = 0.028  # steady-state rise per A^2 of copper loss (about 50 K at full load)
    p_idle_bar: float = 12.0
    p_full_bar: float = 180.0


MOTOR = MotorParams()


def motor_current(load: F64, p: MotorParams = MOTOR) -> F64:
    return np.asarray(p.i_idle_a + (p.i_full_a - p.i_idle_a) * load, dtype=np.float64)


def thermal_step(temp_c: F64, current_a: F64, dt_s: float, extra_heat_c: F64 | float = 0.0,
                 p: MotorParams = MOTOR) -> F64:
    """One exact step of ``dT/dt = (T_amb + k I^2 + extra - T) / tau`` with the input held over ``dt``."""
    target = p.t_ambient_c + p.heat_c_per_a2 * current_a**2 + extra_heat_c
    alpha = 1.0 - math.exp(-dt_s / p.tau_s)
    return np.asarray(temp_c + (target - temp_c) * alpha, dtype=np.float64)


def steady_temperature(load: F64, p: MotorParams = MOTOR) -> F64:
    return np.asarray(p.t_ambient_c + p.heat_c_per_a2 * motor_current(load, p) ** 2, dtype=np.float64)


def pressure(load: F64, t_s: float, p: MotorParams = MOTOR) -> F64:
    ripple = 1.5 * np.sin(2 * np.pi * 0.7 * t_s + np.arange(load.size))
    return np.asarray(p.p_idle_bar + (p.p_full_bar - p.p_idle_bar) * load + ripple, dtype=np.float64)
