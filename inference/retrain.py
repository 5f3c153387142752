"""Retraining on the box: a candidate from a lookback window of the historian, trained in a child process
with a CPU and memory budget, registered and set as the challenger (in shadow beside the champion).

The training data: the equipment's samples of the last ``lookback_s`` (``[inference.lifecycle]``), without
the periods engineers labelled ``true_fault`` (their samples are dropped, so windows reaching into them
lose coverage and are gated out like every gated window); periods labelled ``false_alarm`` stay, as normal
running. The candidate has the champion's kind, target false-alarm rate and equipment.

The child (``multiprocessing`` spawn: a fresh interpreter, none of the pipeline's threads) lowers its
priority (``nice``) and caps its address space (``RLIMIT_AS``, ``memory_mb``) before it imports anything
heavy; it is stopped after ``timeout_s``. It only computes; the parent writes the registry.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from inference.history import LabelledPeriod
from inference.retrain_progress import tracked


class RetrainError(Exception):
    """A candidate could not be built (too little data, the child failed or ran out of time)."""


@dataclass
class TrainingJob:
    name: str
    kind: Any  # inference.models.base.ModelKind (pickled by reference)
    options: dict[str, Any]
    settings: dict[str, Any]  # InferenceSettings as a dict
    dsn: str
    assets: list[str]
    since: datetime
    until: datetime
    exclude: list[LabelledPeriod] = field(default_factory=list)
    min_good_windows: int = 200
    nice: int = 10
    memory_mb: int = 4096
    levels: str = "all"  # the champion's ``--levels`` mode (``inference.levels``), decided anew on new data


def _limit(job: TrainingJob) -> None:
    os.nice(job.nice)
    limit = job.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def fit_candidate(job: TrainingJob) -> tuple[dict[str, Any], bytes, Any]:
    """The candidate's manifest, ONNX bytes and held-out set (what the child runs; callable in process)."""
    import numpy as np
    import pyarrow as pa

    from inference.history import read_samples
    from inference.levels import select as select_levels
    from inference.manifest import build_manifest
    from inference.settings import InferenceSettings
    from inference.train import fit
    from inference.training_set import features_from_samples
    from inference.windows import WindowSpec

    settings = InferenceSettings.model_validate(job.settings)
    batch = read_samples(job.dsn, job.assets, job.since, job.until)
    if job.exclude:
        ts = batch.column("ts").cast(pa.int64()).to_numpy()
        assets = np.asarray(batch.column("asset").cast(pa.string()).to_pylist(), dtype=object)
        drop = np.zeros(batch.num_rows, dtype=bool)
        for p in job.exclude:
            drop |= (assets == p.asset) & (ts >= p.start_us) & (ts < p.end_us)
        batch = batch.filter(pa.array(~drop))
    spec = WindowSpec.from_settings(settings)
    tset = features_from_samples([batch], spec, spectral=settings.spectral_signals, n_bands=settings.n_bands)
    if tset.x.shape[0] < job.min_good_windows:
        raise RetrainError(
            f"training data too small for {job.name}: {tset.x.shape[0]} good windows in "
            f"{job.since.isoformat()}..{job.until.isoformat()}, need >= {job.min_good_windows} (raise "
            "inference.lifecycle.lookback_s or lower min_good_windows)"
        )
    tset, levels = select_levels(tset, (), job.levels)
    options = job.kind.settings.model_validate(job.options)
    result = fit(job.kind, tset, options)
    sources = [f"historian {', '.join(job.assets)} {job.since.isoformat()}..{job.until.isoformat()} "
               f"excluding {len(job.exclude)} true-fault periods"]
    manifest = build_manifest(job.name, tset, result, spec, settings, sources, assets=job.assets)
    manifest["training"]["windows_used"] = int(tset.x.shape[0])
    if levels is not None:
        manifest["levels"] = levels
    return manifest, result.onnx, result.holdout


def _child(job: TrainingJob, conn: Any) -> None:
    try:
        _limit(job)
        conn.send(("ok", fit_candidate(job)))
    except BaseException as exc:  # everything goes back to the parent, which decides
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def train_in_child(job: TrainingJob, timeout_s: float) -> tuple[dict[str, Any], bytes, Any]:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(job, send), name=f"retrain-{job.name}", daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout_s):
            raise RetrainError(f"training {job.name} took longer than {timeout_s:g} s (raise "
                               "inference.lifecycle.timeout_s)")
        status, payload = recv.recv()
    except EOFError:
        raise RetrainError(f"the training child of {job.name} died (exit code {proc.exitcode}; memory "
                           "limit inference.lifecycle.memory_mb?)") from None
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if status != "ok":
        raise RetrainError(f"training {job.name} failed in the child: {payload}")
    manifest, onnx, holdout = payload
    return manifest, onnx, holdout


def retrain(
    reg: Any,
    settings: Any,
    name: str,
    dsn: str,
    kind_of: Any,
    *,
    now: datetime,
    scope: str = "all",
    trigger: str = "manual",
    who: str | None = None,
) -> Any:
    """Build a candidate of ``name`` from the lookback window before ``now``, register it and make it the
    challenger of ``scope``. ``kind_of(kind name)`` gives the model kind (the app's table)."""
    from inference.aliases import alias
    from inference.history import read_labels

    life = settings.lifecycle
    champion = alias(reg.state(name), scope, "champion")
    base = reg.package(name, champion)
    assets = list(base.manifest.get("assets") or ([] if scope == "all" else [scope]))
    if not assets:
        raise RetrainError(f"model {name} is not scoped to an equipment: retrain with --scope PATH")
    since = now - timedelta(seconds=life.lookback_s)

    def build() -> tuple[Any, dict[str, Any]]:
        labels = read_labels(dsn, assets, since, now)
        faults = [p for p in labels if p.action == "true_fault"]
        target = (base.manifest.get("metrics") or {}).get("calibration", {}).get("target_far")
        options = {} if target is None else {"target_far": target}
        job = TrainingJob(
            name, kind_of(str(base.manifest.get("kind", "pca"))), options,
            settings.model_dump(mode="json"), dsn, assets, since, now, faults, life.min_good_windows,
            life.nice, life.memory_mb, str((base.manifest.get("levels") or {}).get("mode", "all")),
        )
        t0 = time.monotonic()
        manifest, onnx, holdout = train_in_child(job, life.timeout_s)
        pkg = reg.add(manifest, onnx, holdout)
        detail = {
            "trigger": trigger, "scope": scope, "based_on": base.version, "assets": assets,
            "since": since.isoformat(), "until": now.isoformat(),
            "windows": manifest["training"]["windows_used"],
            "excluded_true_fault_periods": len(faults),
            "kept_false_alarm_periods": sum(p.action == "false_alarm" for p in labels),
            "child": {"nice": life.nice, "memory_mb": life.memory_mb,
                      "seconds": round(time.monotonic() - t0, 2)},
        }
        reg.audit("retrain", name, pkg.version, detail, who)
        reg.set_alias(name, pkg.version, "challenger", scope=scope, reason=f"retrained ({trigger})", who=who)
        return pkg, detail

    pkg, _ = tracked(dsn, build, model=name, scope=scope, trigger=trigger, who=who, based_on=base.version,
                     now=now, lookback_s=life.lookback_s,
                     result=lambda r: {"version": r[0].version, "windows": r[1]["windows"],
                                       "seconds": r[1]["child"]["seconds"]})
    return pkg
