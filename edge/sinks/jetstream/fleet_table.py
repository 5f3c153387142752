"""The fleet table: heartbeats against the desired state. Pure functions (no NATS, no clock of their own).

A box is ``silent`` when its last heartbeat is older than ``silent_after`` of its own intervals; ``drift``
when the config hash it reports differs from the desired one (``desired(box)``: what ``firmware-config/``
renders for it, ``edge.app.fleet.status.desired_from_dir``); ``unknown`` when the config folder has no such
box; ``config-error`` when its files do not load. :func:`diff` compares the rendered body with the one the
box carries. Shared by ``edge fleet`` and the TUI's fleet screen.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

Desired = Callable[[str], "tuple[str | None, str | None, str | None]"]  # box -> (sha256, body, problem)


@dataclass
class BoxRow:
    box: str
    site: str
    version: str
    age_s: float
    seq: int
    reported_sha256: str
    desired_sha256: str | None
    state: str  # ok | silent | drift | silent,drift | unknown | config-error | missing
    spool_rows: float = 0.0
    unhealthy: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    last_error: str | None = None

    @property
    def silent(self) -> bool:
        """No heartbeat for too long, or never one from a box the config folder names."""
        return self.state == "missing" or "silent" in self.state.split(",")

    @property
    def drifted(self) -> bool:
        return "drift" in self.state.split(",")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rows(heartbeats: Iterable[dict[str, Any]], desired: Desired, *, now: float,
         silent_after: float = 3.0, expected: Iterable[str] = ()) -> list[BoxRow]:
    """One row per box heard from, plus ``missing`` rows for ``expected`` boxes never heard from."""
    out: dict[str, BoxRow] = {}
    for hb in heartbeats:
        box = str(hb.get("box", "?"))
        age = max(0.0, now - float(hb.get("ts", 0)))
        interval = float(hb.get("interval_s") or 5.0)
        sha, _, problem = desired(box)
        reported = str(hb.get("config_sha256") or "")
        flags = []
        if age > silent_after * interval:
            flags.append("silent")
        if problem is not None:
            flags.append(problem.split(":")[0])
        elif sha != reported:
            flags.append("drift")
        components = hb.get("components") or {}
        spool = hb.get("spool") or {}
        out[box] = BoxRow(
            box=box, site=str(hb.get("site", "")), version=str(hb.get("version", "")), age_s=round(age, 1),
            seq=int(hb.get("seq", 0)), reported_sha256=reported, desired_sha256=sha,
            state=",".join(flags) or "ok",
            spool_rows=sum(float(v.get("rows", 0)) for v in spool.values() if isinstance(v, dict)),
            unhealthy=sorted(n for n, c in components.items()
                             if isinstance(c, dict) and not c.get("healthy")),
            models=[f"{m.get('name')}@{m.get('version')}" for m in hb.get("models") or []],
            last_error=hb.get("last_error"))
    for box in expected:
        if box not in out:
            sha, _, _ = desired(box)
            out[box] = BoxRow(box=box, site="", version="", age_s=float("inf"), seq=0, reported_sha256="",
                              desired_sha256=sha, state="missing")
    return [out[b] for b in sorted(out)]


def table(boxes: list[BoxRow]) -> str:
    """The rows as a fixed-width text table."""
    head = ["BOX", "STATE", "AGE_S", "SEQ", "VERSION", "CONFIG", "DESIRED", "SPOOL", "UNHEALTHY",
            "LAST_ERROR"]
    body = [[r.box, r.state, "-" if r.age_s == float("inf") else f"{r.age_s:.1f}", str(r.seq), r.version,
             r.reported_sha256[:12] or "-", (r.desired_sha256 or "-")[:12], f"{r.spool_rows:.0f}",
             ",".join(r.unhealthy) or "-", (r.last_error or "-")[:40]] for r in boxes]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in [head, *body])


def diff(box: str, desired_body: str | None, reported_body: str | None) -> str:
    """A unified diff: the rendered config (``firmware-config``) against what the box reports."""
    if desired_body is None:
        return f"{box}: nothing rendered for it (no boxes/{box}.toml, or it does not load)\n"
    if reported_body is None:
        return f"{box}: its heartbeat carries no config body (jetstream.heartbeat_config_body = false)\n"
    a = _normal(desired_body).splitlines(keepends=True)
    b = _normal(reported_body).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile=f"firmware-config/{box}", tofile=f"{box} (reported)"))


def _normal(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, sort_keys=True) + "\n"
    except ValueError:
        return body if body.endswith("\n") else body + "\n"
