"""What the demo found: rows in the historian, every simulated tag present, insights against the labels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg


def _labels(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ts(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1e6, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def summarize(dsn: str, labels_path: Path) -> Iterator[str]:
    with psycopg.connect(dsn) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                  for t in ("samples", "features", "insights", "events", "dead_letters")}
        tags = conn.execute("SELECT tag, count(*) FROM samples GROUP BY tag ORDER BY tag").fetchall()
        alarms = conn.execute(
            "SELECT asset, window_start, window_end, severity, score, threshold FROM insights "
            "WHERE severity <> 'ok' AND NOT gated ORDER BY window_start").fetchall()
        gated = conn.execute("SELECT asset, window_start, window_end FROM insights WHERE gated "
                             "ORDER BY window_start").fetchall()
        reasons = conn.execute(
            "SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY 2 DESC").fetchall()
        ctx = conn.execute(
            "SELECT count(*) FILTER (WHERE work_order IS NOT NULL), count(*) FROM samples").fetchone()
    yield "— summary —"
    yield "historian rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items())
    yield f"tags with samples: {len(tags)} (fewest rows: {min((n for _, n in tags), default=0):,})"
    if ctx and ctx[1]:
        yield f"samples with a work order attached: {ctx[0]:,} of {ctx[1]:,}"
    if reasons:
        yield "dead letters by reason: " + ", ".join(f"{r} {n}" for r, n in reasons)
    labels = _labels(labels_path)
    yield f"injected faults: {len(labels)}"
    for lb in labels:
        machine = str(lb.get("machine") or "")
        start, end = _ts(lb.get("start_us") or lb["start"]), _ts(lb.get("end_us") or lb["end"])
        hits = [a for a in alarms if _same_machine(a[0], machine) and a[2] >= start]
        during = [a for a in hits if a[1] <= end]
        first = (f"first flagged {(hits[0][2] - start).total_seconds():.0f}s after it began" if hits
                 else "not flagged")
        held = [g for g in gated if _same_machine(g[0], machine) and g[2] >= start and g[1] <= end]
        note = f"; {len(held)} windows held back as bad input (no alarm)" if held else ""
        yield f"  {lb.get('kind')} on {machine}: {len(during)} windows flagged during it, {first}{note}"
    faulty = {str(lb.get("machine") or "") for lb in labels}
    clean = [a for a in alarms if not any(_same_machine(a[0], m) for m in faulty if m)]
    yield f"windows flagged on machines with no injected fault (false alarms): {len(clean)}"


def _same_machine(asset: str, machine: str) -> bool:
    """``acme/plant1/packaging/line1/cell3/press3`` is the simulator's machine ``line1.press3``."""
    if not machine:
        return False
    line, _, name = machine.partition(".")
    parts = asset.split("/")
    return line in parts and parts[-1] == name
