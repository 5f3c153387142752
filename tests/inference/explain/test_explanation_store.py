"""An explanation travels: computed on the raised rows, written by the historian writer into
``insights.explanation`` (migration 0025), copied to the outbox, and summarized in the MQTT payload, which
the published schema accepts."""

from __future__ import annotations

import json
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import numpy as np
import orjson
import psycopg

from edge.core.datamodel import INSIGHTS, batch_from_rows
from edge.core.envelope import Envelope
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.writer import HistorianWriter
from edge.sinks.outbox.encoder import insight_payloads, load_schema
from edge.sinks.outbox.publisher import rows_to_insights
from inference.explain.baseline import feature_stats, feature_unit
from inference.explain.features import explain_batch, explain_row, explained, short
from tests.fixtures.historian_helpers import historian as historian  # the fixture

T0 = 1_764_000_000_000_000
NAMES = ["temperature__mean", "vibration__rms", "temperature__skew"]
STATS: dict[str, dict[str, Any]] = {"temperature__mean": {"mean": 61.2, "sd": 1.8, "unit": "degC"},
         "vibration__rms": {"mean": 1.1, "sd": 0.2, "unit": "mm/s"},
         "temperature__skew": {"mean": 0.0, "sd": 0.5}}


def insights(severities: list[str]) -> Any:
    rows = [{
        "insight_id": f"{i:032x}", "ts": T0 + i * 10_000_000, "asset": "acme/plant1/area1/line1/press2",
        "model": "press-pca", "model_version": "1", "model_sha256": "ab" * 32, "score": 0.5 + i,
        "threshold": 1.0, "severity": sev, "window_start": T0 + (i - 1) * 10_000_000,
        "window_end": T0 + i * 10_000_000,
        "top_features": json.dumps([{"feature": NAMES[0], "contribution": 1.0}]),
        "context": json.dumps({"product": "P-1"}), "quality_flags": 0, "gated": False,
    } for i, sev in enumerate(severities)]
    return batch_from_rows(rows, INSIGHTS)


def test_the_summary_reads_like_an_engineer_says_it() -> None:
    x = np.array([[78.4, 1.2, 0.1]])
    doc = json.loads(explain_batch(insights(["alarm"]), NAMES, x, np.array([[0.9, 0.05, 0.2]]), STATS)
                     .column("explanation")[0].as_py())
    assert doc["summary"].startswith("temperature mean 78.4 degC, baseline 61.2 ± 1.8 (+17.2 degC, 9.56 sd)")
    assert [f["feature"] for f in doc["features"]] == ["temperature__mean", "temperature__skew",
                                                        "vibration__rms"]
    skew = doc["features"][1]
    assert skew["unit"] is None and skew["z"] == 0.2  # a shape statistic has no unit of the signal's
    assert doc["signals"]["temperature"] == {"mean": 61.2, "sd": 1.8, "unit": "degC"}
    # without contributions the largest deviations lead
    doc = json.loads(explain_batch(insights(["warning"]), NAMES, np.array([[61.0, 2.5, 0.0]]), None, STATS)
                     .column("explanation")[0].as_py())
    assert doc["features"][0]["feature"] == "vibration__rms" and doc["features"][0]["contribution"] is None


def test_only_raised_rows_are_explained_and_a_package_without_stats_says_so() -> None:
    batch = insights(["ok", "warning", "alarm", "ok"])
    x = np.tile([70.0, 1.1, 0.0], (4, 1))
    _, _, out = explained(("m", "1", batch), {"features": NAMES}, x, np.ones((4, 3)))
    texts = out.column("explanation").to_pylist()
    assert [t is not None for t in texts] == [False, True, True, False]
    doc = json.loads(texts[1])
    assert doc["features"][0]["baseline_mean"] is None
    assert "no training baseline in the model package" in doc["summary"]


def test_the_batch_gives_what_the_one_row_reference_gives() -> None:
    rng = np.random.default_rng(3)
    n = 40
    x = rng.normal(60.0, 5.0, size=(n, 3))
    stats = {**STATS, "vibration__rms": {"mean": 1.1, "sd": 0.0, "unit": "mm/s"}}  # a zero sd: no z
    del stats["temperature__skew"]  # a feature without baseline
    for contrib in (rng.normal(size=(n, 3)), None):
        batch = explain_batch(insights(["alarm", "ok", "warning", "alarm"] * 10), NAMES, x, contrib, stats)
        for i, text in enumerate(batch.column("explanation").to_pylist()):
            if i % 4 == 1:
                assert text is None
                continue
            one = explain_row(NAMES, x[i], None if contrib is None else contrib[i], stats, 3)
            assert json.loads(text) == one


def test_feature_stats_and_units() -> None:
    x = np.array([[1.0, 10.0], [3.0, np.nan], [5.0, 30.0]])
    stats = feature_stats(x, ["temperature__mean", "temperature__slope"], {"temperature": "degC"})
    assert stats["temperature__mean"] == {"mean": 3.0, "sd": float(np.std([1.0, 3.0, 5.0])), "unit": "degC"}
    assert stats["temperature__slope"]["mean"] == 20.0 and stats["temperature__slope"]["unit"] == "degC/s"
    assert feature_unit("temperature__kurt", {"temperature": "degC"}) is None
    assert [short(v) for v in (1234.5, 78.41, 1.234, 0.0123, 0.00001)] == ["1234", "78.4", "1.23", "0.012",
                                                                          "1e-05"]


def test_stored_with_the_insight_and_summarized_for_mes(
    historian: tuple[psycopg.Connection[Any], str],
) -> None:
    conn, _flavor = historian
    batch = insights(["ok", "alarm"])
    x = np.array([[61.0, 1.1, 0.0], [78.4, 1.2, 0.1]])
    _, _, batch = explained(("press-pca", "1", batch), {"features": NAMES, "feature_stats": STATS}, x,
                            np.array([[0.1, 0.0, 0.0], [0.9, 0.05, 0.2]]))
    writer = HistorianWriter(HistorianSettings.model_validate({}), conn=conn)
    assert writer.write_sync(Envelope("insights", batch, "explained-1"))
    stored = dict(conn.execute("SELECT insight_id, explanation FROM insights ORDER BY ts").fetchall())
    assert stored[f"{0:032x}"] is None
    assert stored[f"{1:032x}"]["features"][0]["feature"] == "temperature__mean"
    payloads = [r[0] for r in conn.execute("SELECT payload FROM insights_outbox ORDER BY seq")]
    docs = [orjson.loads(p) for _, p in insight_payloads(rows_to_insights(payloads))]
    schema = load_schema()
    for doc in docs:
        jsonschema.validate(doc, schema)
    assert "explanation" not in docs[0]
    summary = docs[1]["explanation"]
    assert summary["summary"].startswith("temperature mean 78.4 degC, baseline 61.2 ± 1.8")
    assert summary["features"][0] == {"feature": "temperature__mean", "value": 78.4, "unit": "degC",
                                      "baseline_mean": 61.2, "baseline_sd": 1.8, "deviation": 17.2,
                                      "z": 9.556}
