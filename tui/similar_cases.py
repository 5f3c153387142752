"""Similar past alarms: raised insights of the same equipment or the same model, nearest in their feature
contributions (cosine distance of the contribution vectors), with how engineers labelled them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg

from tui.alarm_models import SimilarCase
from tui.historian_rows import as_json

CANDIDATES = 500  # newest raised insights compared; older ones are rarely the engineer's best reference
SHOWN = 5


def contributions(value: Any) -> dict[str, float]:
    """{feature: contribution} of a ``top_features`` JSON list (or object)."""
    data = as_json(value)
    out: dict[str, float] = {}
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                name, c = item.get("feature") or item.get("name"), item.get("contribution")
                if name and isinstance(c, int | float) and math.isfinite(c):
                    out[str(name)] = float(c)
    elif isinstance(data, dict):
        out = {str(k): float(v) for k, v in data.items() if isinstance(v, int | float) and math.isfinite(v)}
    return out


def cosine_distance(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """1 - cosine similarity over the union of features (a feature one side lacks counts 0); 1 when either
    side is empty. Contributions are compared by magnitude: the sign of a contribution depends on the kind."""
    keys = set(a) | set(b)
    dot = sum(abs(a.get(k, 0.0)) * abs(b.get(k, 0.0)) for k in keys)
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    if na == 0 or nb == 0:
        return 1.0
    return max(0.0, 1.0 - dot / (na * nb))


async def similar_cases(
    conn: psycopg.AsyncConnection[Any], *, insight_id: str, ts: datetime, asset: str, model: str,
    top_features: Any, limit: int = SHOWN,
) -> tuple[SimilarCase, ...]:
    mine = contributions(top_features)
    cur = await conn.execute(
        """SELECT i.insight_id, i.ts, i.asset::text, i.model::text, i.severity::text, i.top_features,
                  f.action, f.who, f.comment
           FROM insights i
           LEFT JOIN LATERAL (SELECT fb.action, fb.who, fb.comment FROM operator_feedback fb
                              WHERE fb.insight_id = i.insight_id ORDER BY fb.ts DESC, fb.id DESC LIMIT 1) f
             ON true
           WHERE (i.asset = %(asset)s OR i.model = %(model)s) AND i.insight_id <> %(id)s AND i.ts < %(ts)s
             AND lower(i.severity) IN ('warning', 'alarm')
           ORDER BY i.ts DESC LIMIT %(n)s""",
        {"asset": asset, "model": model, "id": insight_id, "ts": ts, "n": CANDIDATES},
    )
    cases = [
        SimilarCase(str(iid), its, a, m, sev, cosine_distance(mine, contributions(tf)), action, who,
                    comment or "")
        for iid, its, a, m, sev, tf, action, who, comment in await cur.fetchall()
    ]
    # nearest first; at equal distance the labelled case teaches more, then the same equipment, then newest
    cases.sort(key=lambda c: (round(c.distance, 6), c.label in (None, "ack"), c.asset != asset,
                              -c.ts.timestamp()))
    return tuple(cases[:limit])
