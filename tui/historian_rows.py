"""SQL fragments shared by the reads, and how historian rows and event details become view-model values."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tui.models import SEVERITY_RANK, InsightRow


async def has_relation(conn: Any, name: str) -> bool:
    """Whether the historian has this table or view (an older schema may not have it yet)."""
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    row = await cur.fetchone()
    return bool(row and row[0])


def severity_case(column: str) -> str:
    whens = " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in SEVERITY_RANK.items())
    return f"(CASE lower({column}) {whens} ELSE 2 END)"


def as_json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _top_features_text(value: Any, limit: int = 3) -> str:
    data = as_json(value)
    parts: list[str] = []
    if isinstance(data, list):
        for item in data[:limit]:
            if isinstance(item, dict):
                name = item.get("feature") or item.get("name")
                contrib = item.get("contribution", item.get("value"))
                if isinstance(contrib, int | float):
                    parts.append(f"{name} {contrib:.2f}")
                else:
                    parts.append(str(name))
            else:
                parts.append(str(item))
    elif isinstance(data, dict):
        for name, contrib in list(data.items())[:limit]:
            parts.append(f"{name} {contrib:.2f}" if isinstance(contrib, int | float) else str(name))
    return ", ".join(parts)


def runtime_label(detail: Any) -> str | None:
    """Short runtime text from a runtime's ``describe()``: "onnxruntime CPU", "triton (fallback)"."""
    if not isinstance(detail, dict):
        return None
    runtime = detail.get("runtime") or detail.get("provider")
    if not runtime:
        return None
    text = str(runtime)
    providers = detail.get("providers_in_use")
    if isinstance(providers, list) and providers:
        text += " " + str(providers[0]).replace("ExecutionProvider", "")
    if detail.get("using_fallback"):
        text += " (fallback)"
    return text


_DOWN_WORDS = ("disconnect", "refused", "lost", "unavailable", "fail", "down", "error", "timeout",
               "timed out")
_UP_WORDS = ("connected", "answers again", "drained", "up", "online", "subscribed")


def connection_state(message: str, detail: dict[str, Any]) -> str:
    """"up", "down" or the message, from a connection or spool event (state in detail wins)."""
    state = detail.get("state")
    if isinstance(state, str) and state:
        return state
    low = message.lower()
    if any(w in low for w in _DOWN_WORDS):
        return "down"
    if any(w in low for w in _UP_WORDS):
        return "up"
    return message[:20]


INSIGHT_COLUMNS = """i.insight_id, i.ts, i.asset::text, i.model::text, i.model_version::text,
    i.model_sha256::text, i.score, i.threshold, i.severity::text, i.top_features, f.action, f.who,
    coalesce(i.gated, false), coalesce(i.suppressed, false)"""
FEEDBACK_JOIN = """LEFT JOIN LATERAL (
        SELECT fb.action, fb.who FROM operator_feedback fb
        WHERE fb.insight_id = i.insight_id ORDER BY fb.ts DESC, fb.id DESC LIMIT 1) f ON true"""


def insight_row(row: Sequence[Any]) -> InsightRow:
    return InsightRow(
        insight_id=str(row[0]),
        ts=row[1],
        asset=row[2],
        model=row[3],
        model_version=row[4],
        model_sha256=row[5] or "",
        score=row[6],
        threshold=float(row[7]),
        severity=row[8],
        top_features=_top_features_text(row[9]),
        feedback=row[10],
        feedback_by=row[11],
        gated=bool(row[12]),
        suppressed=bool(row[13]),
    )

