"""The TUI historian (tests/fixtures/tui_support.py) plus what the engineer's workbench reads: explanations on
the raised insights (made by inference.explain, as the stage stores them), a product change and a shift
change in the MES context, a data-quality event, an alarm on a neighbouring press, and two labelled past
alarms."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import psycopg

from inference.explain.features import explain_row
from tests.fixtures.tui_support import FIXED_NOW, Historian, make_historian

TROUBLED = "acme/plant1/area1/line2/press2"
NEIGHBOUR = "acme/plant1/area1/line2/press1"
LINE2 = "acme/plant1/area1/line2"
FEATURES = ["vibration__rms", "temperature__mean"]
STATS = {"vibration__rms": {"mean": 1.1, "sd": 0.2, "unit": "mm/s"},
         "temperature__mean": {"mean": 41.5, "sd": 1.5, "unit": "degC"}}
PRODUCT_CHANGE_BEFORE = timedelta(seconds=200)  # before "now": the product change, the shift change
SHIFT_CHANGE_BEFORE = timedelta(seconds=100)
GAP_BEFORE = timedelta(seconds=20)  # the data-quality event comes this long before the newest alarm


@dataclass(frozen=True)
class Workbench:
    historian: Historian
    newest_alarm: str  # the troubled press's newest alarm: follows the product change
    labelled: dict[str, tuple[str, str]]  # insight id -> (action, comment) of the past alarms labelled


def explanation(score: float) -> str:
    values = np.array([1.1 + 2.0 * score, 41.5 + 9.0 * score])
    contributions = np.array([score * 0.6, score * 0.3])
    return json.dumps(explain_row(FEATURES, values, contributions, STATS, 3))


def make_workbench(pg_dsn: str) -> Workbench:
    """A migrated historian in the (fresh) database ``pg_dsn``, filled around FIXED_NOW, with the workbench's
    rows."""
    h = make_historian(pg_dsn)
    newest, labelled = add_workbench_rows(pg_dsn)
    return Workbench(h, newest, labelled)


def add_workbench_rows(pg_dsn: str, now: datetime = FIXED_NOW) -> tuple[str, dict[str, tuple[str, str]]]:
    """The workbench's rows on top of ``fill_historian(now=now)``'s (as superuser): (the troubled press's
    newest alarm, the labels given to two of its past alarms)."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT insight_id, asset, ts, score, severity FROM insights ORDER BY ts DESC""").fetchall()
        for iid, _asset, _ts, score, sev in rows:
            if sev in ("warning", "alarm"):
                conn.execute("UPDATE insights SET explanation = %s::jsonb WHERE insight_id = %s",
                             (explanation(float(score)), iid))
        alarms = [(iid, ts) for iid, asset, ts, _, sev in rows if asset == TROUBLED and sev == "alarm"]
        (newest, newest_ts), past = alarms[0], alarms[-2:]
        # the neighbour's last insight before it is an alarm too
        neighbour = next(iid for iid, asset, ts, *_ in rows if asset == NEIGHBOUR and ts < newest_ts)
        conn.execute("""UPDATE insights SET severity = 'alarm', score = 1.1, explanation = %s::jsonb
                        WHERE insight_id = %s""", (explanation(1.1), neighbour))
        labelled = {past[0][0]: ("false_alarm", "cleaning cycle"),
                    past[1][0]: ("true_fault", "bearing noise")}
        for iid, (action, comment) in labelled.items():
            conn.execute("SELECT record_operator_feedback(%s, %s, %s, %s)", (iid, "bob", action, comment))
        day_start = now - timedelta(hours=2)
        conn.execute(
            """INSERT INTO mes_context (scope, key, value, valid_from, valid_to) VALUES
               (%(line)s, 'product', 'P-HINGE-B', %(d)s, %(p)s),
               (%(line)s, 'product', 'P-HINGE-C', %(p)s, NULL),
               ('acme/plant1', 'shift', 'A', %(d)s, %(s)s), ('acme/plant1', 'shift', 'B', %(s)s, NULL)""",
            {"line": LINE2, "d": day_start, "p": now - PRODUCT_CHANGE_BEFORE, "s": now - SHIFT_CHANGE_BEFORE},
        )
        conn.execute(
            """INSERT INTO events (ts, kind, source, asset, message, detail) VALUES
               (%s, 'data_quality', 'inference', %s, 'temperature: gap raised', '{"rule": "gap"}')""",
            (newest_ts - GAP_BEFORE, TROUBLED),
        )
    return newest, labelled
