"""Shared pieces of the model lifecycle tests: a simulated equipment history in the real historian (shifts,
products, an optional noisier night shift, injected faults), engineers' labels on insights, and training a
package from part of that history as ``edge models train`` does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from edge.sinks.historian.migrate import migrate
from inference.history import read_samples
from inference.manifest import build_manifest
from inference.models.pca.kind import KIND as PCA_KIND
from inference.models.pca.settings import PcaSettings
from inference.packages import ModelPackage, Registry
from inference.settings import InferenceSettings
from inference.train import fit
from inference.training_set import features_from_samples
from inference.windows import WindowSpec

T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
HZ = 2.0
SHIFT_S = 1800  # day and night alternate every half hour
PRODUCT_S = 2400


@dataclass(frozen=True)
class Fault:
    start_s: float
    end_s: float
    signal: str = "a"
    offset: float = 4.0


def settings_for(models_dir: Path) -> InferenceSettings:
    return InferenceSettings(models_dir=models_dir, providers=["CPUExecutionProvider"])


def shift_at(t_s: np.ndarray) -> np.ndarray:
    return np.where((t_s // SHIFT_S) % 2 == 0, "day", "night")


def write_history(
    dsn: str,
    asset: str,
    seconds: float,
    *,
    seed: int = 0,
    night_noise: float = 1.0,
    start: datetime = T0,
    faults: Sequence[Fault] = (),
    drift_from_s: float | None = None,
) -> None:
    """Samples of two correlated signals ``a`` and ``b`` at 2 Hz; ``b``'s noise is ``night_noise`` times
    larger on night shift; ``faults`` add an offset; from ``drift_from_s`` on, ``a``'s level moves."""
    rng = np.random.default_rng(seed)
    t = np.arange(0, seconds, 1 / HZ)
    load = np.sin(2 * np.pi * t / 600.0)
    a = load + 0.2 * rng.normal(size=t.size)
    shift = shift_at(t)
    b = 0.5 * load + 0.2 * rng.normal(size=t.size) * np.where(shift == "night", night_noise, 1.0)
    for f in faults:
        sel = (t >= f.start_s) & (t < f.end_s)
        (a if f.signal == "a" else b)[sel] += f.offset
    if drift_from_s is not None:
        a[t >= drift_from_s] += 1.5
    product = np.where((t // PRODUCT_S) % 2 == 0, "P-100", "P-200")
    base = start.timestamp()
    copy = ("COPY samples (ts, recv_ts, tag, value, quality, flags, source, asset, measure, shift, product) "
            "FROM STDIN")
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur, cur.copy(copy) as cp:
        for i in range(t.size):
            ts = datetime.fromtimestamp(base + t[i], UTC)
            for tag, v in (("a", a[i]), ("b", b[i])):
                cp.write_row((ts, ts, tag, float(v), 0, 0, "sim", asset, tag, shift[i], product[i]))


def new_historian(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn, "postgres")


def label(dsn: str, asset: str, start: datetime, end: datetime, action: str, who: str = "anna") -> str:
    """An insight over [start, end) of ``asset`` (as the champion stored it) labelled ``action``."""
    iid = uuid.uuid4().hex
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO insights (insight_id, ts, asset, model, model_version, model_sha256, score, "
            "threshold, severity, window_start, window_end) "
            "VALUES (%s, %s, %s, 'm', '1', 'x', 2.0, 1.0, 'alarm', %s, %s)",
            (iid, end, asset, start, end),
        )
        conn.execute("SELECT record_operator_feedback(%s, %s, %s, '')", (iid, who, action))
    return iid


def at(seconds: float, start: datetime = T0) -> datetime:
    return start + timedelta(seconds=seconds)


def train_package(
    reg: Registry,
    dsn: str,
    asset: str,
    since: datetime,
    until: datetime,
    *,
    name: str = "press",
    shift: str | None = None,
    margin: float = 1.0,
    settings: InferenceSettings | None = None,
) -> ModelPackage:
    """Fit PCA on ``asset``'s history in [since, until) (only ``shift``'s samples when given), threshold
    scaled by ``margin``, and register it."""
    s = settings or settings_for(reg.root)
    batch = read_samples(dsn, [asset], since, until)
    if shift is not None:
        batch = batch.filter(pc.equal(batch.column("shift").cast(pa.string()), shift))
    spec = WindowSpec.from_settings(s)
    tset = features_from_samples([batch], spec, spectral=s.spectral_signals, n_bands=s.n_bands)
    r = fit(PCA_KIND, tset, PcaSettings(target_far=0.01))
    r.threshold *= margin
    r.thresholds["score"] = r.threshold
    manifest: dict[str, Any] = build_manifest(name, tset, r, spec, s, [f"history {since}..{until}"],
                                              assets=[asset])
    return reg.add(manifest, r.onnx, r.holdout)
