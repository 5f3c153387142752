"""What the demo found: rows in the historian, every simulated tag present, and the scorecard: the insights
against the simulator's labels (:mod:`edge.app.demo.scorecard`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from edge.app.demo.scorecard import GRACE_S, FaultSpan, InsightRow, QualityFinding, score, table


def _labels(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ts(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1e6, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def collect(dsn: str, labels_path: Path, *, grace_s: float = GRACE_S) -> dict[str, Any]:
    """What the run left: rows per table, tags, dead letters, the labels and the scorecard (JSON-ready)."""
    with psycopg.connect(dsn) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                  for t in ("samples", "features", "insights", "events", "dead_letters")}
        tags = conn.execute("SELECT tag, count(*) FROM samples GROUP BY tag ORDER BY tag").fetchall()
        insights = conn.execute(
            "SELECT asset, window_start, window_end, severity, gated FROM insights "
            "ORDER BY window_start, asset").fetchall()
        # the data-quality findings the inference stage raised (inference.quality_watch)
        findings = conn.execute(
            "SELECT asset, detail->>'window_start', detail->>'window_end', detail->>'rule', "
            "detail->>'signal' FROM events WHERE kind = 'data_quality' AND detail->>'state' = 'raised' "
            "AND asset IS NOT NULL ORDER BY ts").fetchall()
        reasons = conn.execute(
            "SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY 2 DESC").fetchall()
        ctx = conn.execute(
            "SELECT count(*) FILTER (WHERE work_order IS NOT NULL), count(*) FROM samples").fetchone()
    labels = _labels(labels_path)
    spans = [FaultSpan(str(lb.get("kind")), str(lb.get("machine") or ""),
                       _ts(lb.get("start_us") or lb["start"]), _ts(lb.get("end_us") or lb["end"]))
             for lb in labels]
    rows = [InsightRow(_machine(a), ws, we, str(sev), bool(g)) for a, ws, we, sev, g in insights]
    found = [QualityFinding(_machine(a), _ts(ws), _ts(we), str(rule), str(sig))
             for a, ws, we, rule, sig in findings if ws and we]
    return {
        "historian_rows": counts,
        "tags": {"with_samples": len(tags), "fewest_rows": min((n for _, n in tags), default=0)},
        "samples_with_work_order": ctx[0] if ctx else 0,
        "dead_letters_by_reason": dict(reasons),
        "labels": labels,
        "scorecard": score(spans, rows, found, grace_s=grace_s),
    }


def summarize(dsn: str, labels_path: Path) -> Iterator[str]:
    yield from lines(collect(dsn, labels_path))


def lines(summary: dict[str, Any]) -> Iterator[str]:
    counts = summary["historian_rows"]
    yield "— summary —"
    yield "historian rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items())
    yield (f"tags with samples: {summary['tags']['with_samples']} "
           f"(fewest rows: {summary['tags']['fewest_rows']:,})")
    if counts["samples"]:
        yield (f"samples with a work order attached: {summary['samples_with_work_order']:,} "
               f"of {counts['samples']:,}")
    if summary["dead_letters_by_reason"]:
        yield "dead letters by reason: " + ", ".join(
            f"{r} {n}" for r, n in summary["dead_letters_by_reason"].items())
    yield f"injected faults: {len(summary['labels'])}"
    yield from table(summary["scorecard"])


def _machine(asset: str) -> str:
    """``acme/plant1/packaging/line1/cell3/press3`` -> the simulator's machine name ``line1.press3``."""
    parts = asset.split("/")
    line = next((p for p in parts if p.startswith("line")), "")
    return f"{line}.{parts[-1]}" if line else asset
