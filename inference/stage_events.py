"""The stage's events: one ``runtime`` event per deployed model (model, version, sha256, runtime, providers
requested and in use, asset scope: what the TUI's models screen shows) and the "events" batches the stage
emits them (and runtime fallbacks, drift) in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from inference.deploy import DeployedModel


def runtime_events(models: Sequence[DeployedModel]) -> list[tuple[str, str, dict[str, Any]]]:
    """One ``runtime`` event per deployed model: what runs it, where (providers), for which equipment."""
    out = []
    for m in models:
        rt = m.runtime.describe()
        fallback = rt.get("fallback") or {}
        in_use = rt.get("providers_in_use")
        if in_use is None:
            in_use = fallback.get("providers_in_use", []) if rt.get("using_fallback") else []
        detail: dict[str, Any] = {
            "model": m.name,
            "version": str(m.package.version),
            "sha256": m.package.sha256,
            "runtime": rt.get("runtime", type(m.runtime).__name__),
            "providers_requested": rt.get("providers_requested", fallback.get("providers_requested", [])),
            "providers_in_use": in_use,
            "asset_scope": sorted(m.assets),  # empty: every equipment
        }
        if "using_fallback" in rt:
            detail["using_fallback"] = bool(rt["using_fallback"])
        where = ", ".join(in_use) if in_use else "remote"
        scope = f"{len(m.assets)} equipment" if m.assets else "all equipment"
        out.append(
            ("runtime", f"model {m.name} v{m.package.version} on {detail['runtime']} ({where}), {scope}",
             detail)
        )
    return out


def events_batch(events: Sequence[tuple[str, str, dict[str, Any]]], source: str) -> pa.RecordBatch:
    from edge.core.datamodel import event_row
    from edge.core.datamodel import events_batch as to_batch

    now = datetime.now(UTC)
    return to_batch([event_row(kind, msg, detail, source=source, asset=detail.get("asset"), ts=now)
                     for kind, msg, detail in events])
