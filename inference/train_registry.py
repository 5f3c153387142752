"""``edge models train`` end to end: read a baseline (CSV, Parquet or the historian), featurize it as the
pipeline does, check it is large enough, fit and cross-calibrate the model kind, and register the package
with its manifest (not promoted)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

from inference.calibration import Hysteresis
from inference.cross_calibration import check_training_size
from inference.levels import describe as describe_levels
from inference.levels import select as select_levels
from inference.manifest import build_manifest
from inference.models.base import KindSettings, ModelKind, Progress
from inference.train import fit
from inference.training_set import (
    features_from_samples,
    file_sha256,
    read_historian,
    read_table,
    samples_batch,
    signals_of,
)
from inference.windows import WindowSpec

S = TypeVar("S", bound=KindSettings)


def stderr_progress(stream: TextIO | None = None) -> Progress:
    t0 = time.monotonic()

    def report(msg: str) -> None:
        print(f"[train {time.monotonic() - t0:6.1f}s] {msg}", file=stream or sys.stderr, flush=True)

    return report


def train_to_registry(
    settings: Any,
    kind: ModelKind[S],
    options: S | None = None,
    *,
    name: str,
    csv: Path | None = None,
    parquet: Path | None = None,
    dsn: str | None = None,
    asset: str | None = None,
    t_from: Any = None,
    t_to: Any = None,
    holdout: float = 0.2,
    time_column: str | None = None,
    column_map: dict[str, str] | None = None,
    ignore_columns: Sequence[str] = (),
    rows: tuple[int | None, int | None] | None = None,
    check_size: bool = True,
    progress: Progress | None = None,
    stats: Sequence[str] = (),
    manifest_extra: dict[str, Any] | None = None,
    keep: Any = None,
    levels: str | None = None,
) -> Any:
    """Read the baseline, featurize it as the pipeline does (``settings``: its window, grid and
    ``signal_key``), fit, and register the package (not promoted). A file's model is scoped to ``asset``
    when one is given (and runs on every equipment otherwise); a historian's always is. ``check_size``:
    raise ``TrainingDataTooSmall`` when the baseline cannot resolve the kind's ``target_far``. ``stats``: keep
    only the features of these window statistics (empty: all); ``manifest_extra``: added to the manifest;
    ``keep``: a boolean per row read (after ``rows``), the rows trained on (a file's: None trains on all);
    ``levels``: which signals keep their level statistics (``inference.levels``; None: the default mode)."""
    from inference.packages import Registry

    say = progress or stderr_progress()
    opts = options if options is not None else cast(S, kind.settings.model_validate({}))
    spec = WindowSpec.from_settings(settings)
    sources: list[str] = []
    if csv is not None or parquet is not None:
        path = Path(csv or parquet)  # type: ignore[arg-type]
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        say(f"reading {path}")
        ts_us, signals = read_table(path, time_column, ignore=ignore_columns, rows=rows, rename=column_map)
        if keep is not None:
            ts_us, signals = ts_us[keep], {k: v[keep] for k, v in signals.items()}
        say(f"{len(ts_us)} rows x {len(signals)} signals ({', '.join(signals)})")
        batch = samples_batch(ts_us, signals, asset or "baseline")
        extent = "" if rows is None else " rows " + ":".join("" if r is None else str(r) for r in rows)
        extent += "" if keep is None else f" ({len(ts_us)} rows kept)"
        sources.append(f"{path.name} sha256:{file_sha256(path)}{extent}")
    elif dsn is not None:
        if asset is None:
            raise ValueError("--dsn needs --asset")
        say(f"reading samples of {asset} from the historian")
        batch = read_historian(dsn, asset, t_from, t_to)
        sources.append(f"historian {asset} {t_from}..{t_to} rows:{batch.num_rows}")
    else:
        raise ValueError("give a CSV, a Parquet file or a historian DSN")
    say(f"signals by {spec.signal_key}: {', '.join(signals_of(batch, spec.signal_key))}")
    say(f"windowing: {spec.window_s:g}s windows every {spec.hop_s:g}s on a {spec.grid_hz:g} Hz grid")
    tset = features_from_samples([batch], spec, spectral=settings.spectral_signals, n_bands=settings.n_bands)
    tset, decision = select_levels(tset, stats, levels)
    if decision is not None:
        say(describe_levels(decision))
    say(f"{tset.x.shape[0]} good windows x {tset.x.shape[1]} features")
    if check_size:
        n_train = round(tset.x.shape[0] * (1.0 - holdout))
        check_training_size(n_train, opts.target_far, tset.x.shape[1], spec.window_s, spec.hop_s)
    hyst = Hysteresis.from_settings(settings)
    result = fit(kind, tset, opts, holdout=holdout, progress=say, hysteresis=hyst)
    manifest = build_manifest(name, tset, result, spec, settings, sources, assets=[asset] if asset else [])
    if decision is not None:
        manifest["levels"] = decision
    manifest.update(manifest_extra or {})
    reg = Registry(settings.models_dir)
    pkg = reg.add(manifest, result.onnx, result.holdout)
    say(f"registered {name} v{pkg.version}")
    return pkg
