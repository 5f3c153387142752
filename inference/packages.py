"""The model registry: versions of model packages (``inference.package_format``, re-exported here), their
aliases (``inference.aliases``: champion and challenger per scope), validation and gate results, and the
audit log.

``InferenceSettings.models_dir`` holds ``<name>/<version>/`` packages, ``<name>/state.json`` (aliases,
champion history per scope, validations, gate results) and ``audit.jsonl`` (one JSON audit event per line:
register, validate, gate, alias, promote, rollback; each with who, when, why and the result it rested on),
also returned as EVENTS rows by ``audit_batch``.

Rules: a version becomes champion only on a passed promotion gate (``inference.gate``), except the first
champion of a model, which may rest on a passed held-out validation (there is no history of its own to
replay yet); ``force`` overrides either, and the audit says so. A challenger needs neither: it is scored in
shadow and never reaches MES.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from inference import aliases as al
from inference.package_format import (
    HOLDOUT_FILE,
    MANIFEST,
    ONNX_FILE,
    REQUIRED_KEYS,
    ModelPackage,
    PackageError,
    archive_package,
    check_features,
    load_package,
    sha256_bytes,
    write_package,
)

__all__ = [
    "HOLDOUT_FILE", "MANIFEST", "ONNX_FILE", "REQUIRED_KEYS", "ModelPackage", "PackageError", "Registry",
    "archive_package", "audit_batch", "check_features", "load_package", "sha256_bytes", "write_package",
]
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _now() -> str:
    return datetime.now(UTC).strftime(TS_FORMAT)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a bare container)
        return "unknown"


def _basis_summary(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """What an alias change rested on, short enough for every audit line."""
    if result is None:
        return None
    keep = ("passed", "ts", "false_alarm_rate", "detection_rate", "reasons", "since", "until", "windows")
    return {k: result[k] for k in keep if k in result}


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ---------------------------------------------------------------- state and audit
    def _state_path(self, name: str) -> Path:
        return self.root / name / "state.json"

    def state(self, name: str) -> dict[str, Any]:
        """The model's state in schema 2 (an older state.json is migrated on read)."""
        p = self._state_path(name)
        return al.migrate_state(json.loads(p.read_text())) if p.exists() else al.empty_state()

    def _save_state(self, name: str, state: dict[str, Any]) -> None:
        p = self._state_path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(p)

    def audit(
        self, action: str, name: str, version: str | None, detail: dict[str, Any], who: str | None = None
    ) -> dict[str, Any]:
        event = {
            "ts": _now(),
            "kind": "audit",
            "source": "inference.registry",
            "action": action,
            "model": name,
            "version": version,
            "who": who or os_user(),
            "detail": detail,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "audit.jsonl").open("a") as f:
            f.write(json.dumps(event, sort_keys=True) + "\n")
        return event

    def audit_log(self) -> list[dict[str, Any]]:
        p = self.root / "audit.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []

    # ---------------------------------------------------------------- packages
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
        """A version's package; without ``version`` the champion of scope ``all``."""
        v = version or al.alias(self.state(name), al.SCOPE_ALL, "champion")
        if v is None:
            raise PackageError(
                f"model {name} has no champion (run 'edge models promote {name} VERSION')"
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

    # ---------------------------------------------------------------- checks
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
        state["validations"][version] = result
        self._save_state(name, state)
        self.audit("validate", name, version, result)
        return result

    def record_gate(self, name: str, version: str, result: dict[str, Any], who: str | None = None) -> None:
        """Store a promotion gate's result with the version (``inference.gate`` computes it)."""
        self.package(name, version)
        state = self.state(name)
        state["gates"][version] = {**result, "ts": result.get("ts") or _now()}
        self._save_state(name, state)
        self.audit("gate", name, version, result, who)

    def gate_result(self, name: str, version: str) -> dict[str, Any] | None:
        g = self.state(name)["gates"].get(version)
        return None if g is None else dict(g)

    def _champion_basis(self, name: str, version: str, state: dict[str, Any], force: bool) -> dict[str, Any]:
        gate = state["gates"].get(version)
        if gate is not None and gate.get("passed"):
            return {"kind": "gate", **(_basis_summary(gate) or {})}
        first = not any(state["history"].values()) and not any(
            "champion" in roles for roles in state["aliases"].values())
        val = state["validations"].get(version)
        if gate is None and first and val and val.get("passed"):
            return {"kind": "validation", **(_basis_summary(val) or {})}
        if force:
            return {"kind": "forced", "gate": _basis_summary(gate), "validation": _basis_summary(val)}
        if gate is not None:
            why = "; ".join(gate.get("reasons") or []) or "see edge models show"
            raise PackageError(
                f"model {name} v{version} failed its promotion gate ({why}); fix the model, or promote with "
                f"--force (audited)"
            )
        if first:
            raise PackageError(
                f"model {name} v{version} has no passed promotion gate nor, as a first champion, a passed "
                f"validation; run 'edge models validate {name} {version}' or 'edge models gate {name} "
                f"{version} --since T0 --until T1' first"
            )
        raise PackageError(
            f"model {name} v{version} has no passed promotion gate; run 'edge models gate {name} {version} "
            f"--since T0 --until T1' first"
        )

    # ---------------------------------------------------------------- aliases
    def set_alias(
        self,
        name: str,
        version: str | None,
        role: str,
        *,
        scope: str = al.SCOPE_ALL,
        reason: str = "",
        who: str | None = None,
        force: bool = False,
        action: str = "alias",
    ) -> dict[str, Any]:
        """Point ``role`` of ``scope`` at ``version`` (None clears it), audited with who, why and the gate or
        validation result it rested on."""
        role = al.check_role(role)
        scope = al.check_scope(scope)
        state = self.state(name)
        basis: dict[str, Any] | None = None
        if version is not None:
            self.package(name, version)  # checks hash and manifest
            if role == "champion":
                basis = self._champion_basis(name, version, state, force)
            elif al.alias(state, scope, "champion") == version:
                raise PackageError(f"model {name} v{version} is the champion of {scope}: it cannot also be "
                                   "its challenger (pick another version)")
        previous = al.set_alias(state, scope, role, version)
        if role == "champion" and version is not None:
            state["history"].setdefault(scope, []).append(str(version))
            if al.alias(state, scope, "challenger") == version:  # the challenger won: it has no rival now
                al.set_alias(state, scope, "challenger", None)
        self._save_state(name, state)
        detail = {"role": role, "scope": scope, "previous": previous, "reason": reason, "forced": force,
                  "basis": basis}
        return self.audit(action, name, version, detail, who)

    def promote(
        self, name: str, version: str, *, force: bool = False, scope: str = al.SCOPE_ALL, reason: str = "",
        who: str | None = None,
    ) -> dict[str, Any]:
        """Make ``version`` the champion of ``scope`` (the short form of ``set_alias(..., "champion")``)."""
        return self.set_alias(name, version, "champion", scope=scope, reason=reason or "promote", who=who,
                              force=force, action="promote")

    def rollback(
        self, name: str, *, scope: str = al.SCOPE_ALL, reason: str = "", who: str | None = None
    ) -> dict[str, Any]:
        """Back to the champion before the current one of ``scope``."""
        scope = al.check_scope(scope)
        state = self.state(name)
        history: list[str] = state["history"].get(scope, [])
        if len(history) < 2:
            raise PackageError(f"model {name} has no earlier champion of scope {scope} to roll back to")
        undone = history.pop()
        al.set_alias(state, scope, "champion", history[-1])
        self._save_state(name, state)
        detail = {"role": "champion", "scope": scope, "from": undone, "reason": reason or "rollback"}
        return self.audit("rollback", name, history[-1], detail, who)

    def current(self) -> dict[str, str]:
        """Each model's champion of scope ``all``."""
        out = {}
        for m in self.models():
            v = al.alias(self.state(m), al.SCOPE_ALL, "champion")
            if v is not None:
                out[m] = v
        return out

    def deployments(self, name: str) -> list[tuple[str, str, str]]:
        """(scope, role, version) of every alias of ``name``, narrowest scope first."""
        return al.deployments(self.state(name))


def audit_batch(events: list[dict[str, Any]]) -> pa.RecordBatch:
    """Audit events as EVENTS rows (kind audit) for the historian."""
    from edge.core.datamodel import event_row, events_batch

    return events_batch([
        event_row("audit", f"model {e['model']} {e['action']} v{e['version']}",
                  {**e["detail"], "who": e.get("who")}, source=e["source"],
                  ts=datetime.strptime(e["ts"], TS_FORMAT).replace(tzinfo=UTC))
        for e in events
    ])
