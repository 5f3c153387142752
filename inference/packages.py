"""Model packages and the model registry.

A package is a folder (or a ``.tar.gz`` of one) holding ``model.onnx`` and ``manifest.json``::

    {"name": "pump-pca", "version": "3", "kind": "pca", "created": "2026-11-29T19:00:00Z",
     "features": ["Temperature__mean", ...],          # the input columns, in order
     "input": "features", "outputs": {"score": "score", "contributions": "contributions"},
     "threshold": 1.0, "thresholds": {"score": 1.0, "t2": 12.3, "spe": 4.5},
     "window": {"window_s": 60, "hop_s": 10, "grid_hz": 1, ...},
     "training": {"sha256": "...", "windows": 800, "features": 88, "sources": ["a.csv sha256:..."]},
     "metrics": {"train_false_alarm_rate": 0.01, "holdout_false_alarm_rate": 0.02, ...},
     "onnx_sha256": "..."}

Loading (``load_package``) checks the ONNX file's sha256 against the manifest and, given the features the
pipeline produces, that every feature the model needs is there (``PackageError`` with a clear message).

The registry (``InferenceSettings.models_dir``) keeps ``<name>/<version>/`` packages, ``<name>/state.json``
(current version, promotion history, validation results) and ``audit.jsonl`` (one JSON audit event per line:
register, validate, promote, rollback), also returned as EVENTS rows by ``audit_batch``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
HOLDOUT_FILE = "holdout.npy"
REQUIRED_KEYS = (
    "name",
    "version",
    "features",
    "input",
    "outputs",
    "threshold",
    "training",
    "metrics",
    "onnx_sha256",
)


class PackageError(Exception):
    """A model package is missing, corrupt, or does not fit the pipeline."""


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@dataclass
class ModelPackage:
    path: Path
    manifest: dict[str, Any]
    onnx: bytes

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def sha256(self) -> str:
        return str(self.manifest["onnx_sha256"])

    @property
    def features(self) -> list[str]:
        return [str(f) for f in self.manifest["features"]]

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def input_name(self) -> str:
        return str(self.manifest["input"])

    @property
    def output_names(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.manifest["outputs"].items()}

    def holdout(self) -> np.ndarray | None:
        p = self.path / HOLDOUT_FILE
        return np.load(p) if p.exists() else None


def write_package(
    folder: Path, manifest: dict[str, Any], onnx_bytes: bytes, holdout: np.ndarray | None = None
) -> ModelPackage:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = dict(manifest)
    manifest["onnx_sha256"] = sha256_bytes(onnx_bytes)
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise PackageError(f"manifest lacks {', '.join(missing)}")
    (folder / ONNX_FILE).write_bytes(onnx_bytes)
    if holdout is not None:
        np.save(folder / HOLDOUT_FILE, np.asarray(holdout, dtype=np.float64))
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return ModelPackage(folder, manifest, onnx_bytes)


def archive_package(folder: Path, dest: Path) -> Path:
    """Write ``folder`` as a .tar.gz whose members sit under ``<name>-<version>/``."""
    with tarfile.open(dest, "w:gz") as tar:
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f"{folder.name}/{f.name}")
    return dest


def _extract(archive: Path) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="fe-model-"))
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(tmp, filter="data")
    found = [p.parent for p in tmp.rglob(MANIFEST)]
    if len(found) != 1:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PackageError(f"{archive}: expected exactly one {MANIFEST} in the archive, found {len(found)}")
    return found[0]


def load_package(path: Path, produced_features: Iterable[str] | None = None) -> ModelPackage:
    """Load and check a package folder or .tar.gz archive.

    Checks: the manifest has every required key, the ONNX file's sha256 equals ``onnx_sha256``, the feature
    list has no duplicates, and (given ``produced_features``) the pipeline produces every feature the model
    needs. Raises ``PackageError`` naming what is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise PackageError(f"model package {path} does not exist")
    folder = _extract(path) if path.is_file() else path
    mpath = folder / MANIFEST
    if not mpath.exists():
        raise PackageError(f"{folder}: no {MANIFEST}")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise PackageError(f"{mpath}: not valid JSON ({exc})") from None
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise PackageError(f"{mpath}: manifest lacks {', '.join(missing)}")
    opath = folder / ONNX_FILE
    if not opath.exists():
        raise PackageError(f"{folder}: no {ONNX_FILE}")
    onnx_bytes = opath.read_bytes()
    digest = sha256_bytes(onnx_bytes)
    if digest != manifest["onnx_sha256"]:
        raise PackageError(
            f"{opath}: sha256 {digest} does not match the manifest's {manifest['onnx_sha256']}"
            " (the model file was changed or corrupted)"
        )
    feats = list(manifest["features"])
    dup = sorted({f for f in feats if feats.count(f) > 1})
    if dup:
        raise PackageError(f"{mpath}: features listed twice: {', '.join(dup)}")
    pkg = ModelPackage(folder, manifest, onnx_bytes)
    if produced_features is not None:
        check_features(pkg, produced_features)
    return pkg


def check_features(pkg: ModelPackage, produced: Iterable[str]) -> None:
    have = set(produced)
    lacking = [f for f in pkg.features if f not in have]
    if lacking:
        shown = ", ".join(lacking[:8]) + (f" and {len(lacking) - 8} more" if len(lacking) > 8 else "")
        raise PackageError(
            f"model {pkg.name} v{pkg.version} needs features the pipeline does not produce: "
            f"{shown} (check window, grid and signal settings against the manifest's 'window')"
        )


# --------------------------------------------------------------------------------------------- registry


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # state
    def _state_path(self, name: str) -> Path:
        return self.root / name / "state.json"

    def state(self, name: str) -> dict[str, Any]:
        p = self._state_path(name)
        if p.exists():
            data: dict[str, Any] = json.loads(p.read_text())
            return data
        return {"current": None, "history": [], "validations": {}}

    def _save_state(self, name: str, state: dict[str, Any]) -> None:
        p = self._state_path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(p)

    def audit(self, action: str, name: str, version: str | None, detail: dict[str, Any]) -> dict[str, Any]:
        event = {
            "ts": _now(),
            "kind": "audit",
            "source": "inference.registry",
            "action": action,
            "model": name,
            "version": version,
            "detail": detail,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "audit.jsonl").open("a") as f:
            f.write(json.dumps(event, sort_keys=True) + "\n")
        return event

    def audit_log(self) -> list[dict[str, Any]]:
        p = self.root / "audit.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []

    # packages
    def models(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.glob(f"*/{MANIFEST}")))

    def versions(self, name: str) -> list[str]:
        d = self.root / name
        vs = [p.parent.name for p in d.glob(f"*/{MANIFEST}")] if d.exists() else []
        return sorted(vs, key=lambda v: (int(v) if v.isdigit() else 10**9, v))

    def next_version(self, name: str) -> str:
        nums = [int(v) for v in self.versions(name) if v.isdigit()]
        return str(max(nums, default=0) + 1)

    def package(
        self, name: str, version: str | None = None, produced_features: Iterable[str] | None = None
    ) -> ModelPackage:
        v = version or self.state(name)["current"]
        if v is None:
            raise PackageError(
                f"model {name} has no promoted version (run 'edge models promote {name} VERSION')"
            )
        d = self.root / name / str(v)
        if not d.exists():
            raise PackageError(
                f"model {name} has no version {v} (have: {', '.join(self.versions(name)) or 'none'})"
            )
        return load_package(d, produced_features)

    def add(
        self, manifest: dict[str, Any], onnx_bytes: bytes, holdout: np.ndarray | None = None
    ) -> ModelPackage:
        name = str(manifest["name"])
        manifest = dict(manifest)
        manifest.setdefault("version", self.next_version(name))
        if (self.root / name / str(manifest["version"])).exists():
            raise PackageError(f"model {name} version {manifest['version']} already exists")
        pkg = write_package(self.root / name / str(manifest["version"]), manifest, onnx_bytes, holdout)
        self.audit("register", name, pkg.version, {"sha256": pkg.sha256, "kind": manifest.get("kind")})
        return pkg

    def import_package(self, path: Path) -> ModelPackage:
        src = load_package(path)
        return self.add(src.manifest, src.onnx, src.holdout())

    def validate(
        self,
        name: str,
        version: str,
        *,
        max_false_alarm_rate: float = 0.05,
        holdout: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Score the held-out set (the package's, or ``holdout``) and check its false alarm rate."""
        from inference.runtimes.onnx.runtime import OnnxRuntime

        pkg = self.package(name, version)
        x = holdout if holdout is not None else pkg.holdout()
        if x is None or len(x) == 0:
            raise PackageError(f"model {name} v{version} has no held-out set; pass one")
        rt = OnnxRuntime(pkg.onnx, providers=["CPUExecutionProvider"], name=name)
        scores = rt.infer(np.asarray(x))[pkg.output_names.get("score", "score")].astype(np.float64)
        far = float(np.mean(scores >= pkg.threshold))
        passed = bool(np.isfinite(scores).all() and far <= max_false_alarm_rate)
        result = {
            "passed": passed,
            "false_alarm_rate": far,
            "bound": max_false_alarm_rate,
            "windows": len(scores),
            "sha256": pkg.sha256,
            "ts": _now(),
        }
        state = self.state(name)
        state.setdefault("validations", {})[version] = result
        self._save_state(name, state)
        self.audit("validate", name, version, result)
        return result

    def promote(self, name: str, version: str, *, force: bool = False) -> dict[str, Any]:
        state = self.state(name)
        self.package(name, version)  # checks hash and manifest
        val = state.get("validations", {}).get(version)
        if not force and not (val and val.get("passed")):
            raise PackageError(
                f"model {name} v{version} has not passed validation; run "
                f"'edge models validate {name} {version}' first"
            )
        previous = state.get("current")
        state["current"] = version
        state.setdefault("history", []).append(version)
        self._save_state(name, state)
        return self.audit("promote", name, version, {"previous": previous, "forced": force})

    def rollback(self, name: str) -> dict[str, Any]:
        state = self.state(name)
        history: list[str] = state.get("history", [])
        if len(history) < 2:
            raise PackageError(f"model {name} has no earlier promoted version to roll back to")
        undone = history.pop()
        state["current"] = history[-1]
        self._save_state(name, state)
        return self.audit("rollback", name, history[-1], {"from": undone})

    def current(self) -> dict[str, str]:
        return {m: str(self.state(m)["current"]) for m in self.models() if self.state(m).get("current")}


def audit_batch(events: list[dict[str, Any]]) -> pa.RecordBatch:
    """Audit events as EVENTS rows (kind audit) for the historian."""
    from edge.core.datamodel import event_row, events_batch

    return events_batch([
        event_row("audit", f"model {e['model']} {e['action']} v{e['version']}", e["detail"],
                  source=e["source"],
                  ts=datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC))
        for e in events
    ])
