"""Model packages: a folder (or a ``.tar.gz`` of one) holding ``model.onnx`` and ``manifest.json``::

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
The registry that keeps versions of packages is ``inference.packages.Registry``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
