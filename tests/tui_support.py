"""A historian for the TUI tests: migrated with edge/historian/migrate.py, filled with deterministic rows.

Samples come from the plant simulator (``edge.simulator.plant``) with MES context columns; insights,
features, events and dead letters are generated from a fixed seed around a fixed clock, so the screens
(and their snapshots) are the same on every run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse, urlunparse

import numpy as np
import psycopg
from textual.pilot import Pilot

FIXED_NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
MODEL = "iforest"
MODEL_VERSION = "1.2.0"
MODEL_SHA = hashlib.sha256(b"iforest-1.2.0").hexdigest()


def fixed_clock() -> datetime:
    return FIXED_NOW


def with_user(dsn: str, user: str) -> str:
    u = urlparse(dsn)
    host = u.hostname or ""
    netloc = f"{user}@{host}" + (f":{u.port}" if u.port else "")
    return urlunparse(u._replace(netloc=netloc))


def prepare_historian(dsn: str) -> str:
    """Migrate the database at ``dsn`` (a superuser DSN); return the ``edge_reader`` DSN for the TUI."""
    from edge.historian.admin import init_historian

    with psycopg.connect(dsn, autocommit=True) as conn:
        init_historian(conn, flavor="postgres")  # roles, migrations, grants: as `edge historian init`
    return with_user(dsn, "edge_reader")


@dataclass(frozen=True)
class Filled:
    assets: list[str]
    insight_ids: list[str]
    samples: int


def _severity(score: float, threshold: float) -> str:
    """inference's levels: ok, warning, alarm."""
    if score >= threshold * 1.4:
        return "alarm"
    return "warning" if score >= threshold else "ok"


def fill_historian(dsn: str, now: datetime = FIXED_NOW, seconds: int = 300) -> Filled:
    """Rows for a plant of 2 lines x 2 presses over the ``seconds`` before ``now``, written as superuser."""
    from edge.simulator.plant import Plant, PlantConfig

    start_us = int((now - timedelta(seconds=seconds)).timestamp() * 1e6)
    plant = Plant(PlantConfig(lines=2, machines=2, rate_hz=1.0, seed=7), start_us=start_us)
    by_name = {t.name: t for t in plant.tags}
    shift = "A"
    rows: list[tuple[Any, ...]] = []
    for k, (ts_us, tags, values) in enumerate(plant.samples(seconds)):
        ts = datetime.fromtimestamp(int(ts_us[0]) / 1e6, UTC) if len(ts_us) else now
        for name, value in zip(tags.tolist(), values.tolist(), strict=True):
            t = by_name[name]
            # line2.press2 has flaky temperature: a third of its readings uncertain or flagged
            flaky = t.machine == "line2.press2" and t.measure == "temperature" and k % 3 == 0
            quality, flags = (1, 8) if flaky else (0, 0)
            wo = "WO-1001" if t.line == "line1" else "WO-2002"
            product = "P-BRACKET-A" if t.line == "line1" else "P-HINGE-B"
            batch = "B-7" if k < seconds // 2 else "B-8"
            rows.append((ts, ts, name, float(value), quality, flags, "opcua", t.asset, t.measure, t.unit,
                         wo, product, batch, shift))
    assets = sorted({t.asset for t in plant.tags})

    rng = np.random.default_rng(11)
    insights: list[tuple[Any, ...]] = []
    ids: list[str] = []
    threshold = 0.7
    for a_i, asset in enumerate(assets):
        base = (0.35, 0.55, 0.75, 0.95)[a_i]  # press1 of line1 calm ... press2 of line2 in trouble
        for j in range(10):
            ts = now - timedelta(seconds=seconds - 15 - j * 30 - a_i)
            score = round(float(base + rng.normal(0, 0.08)), 3)
            iid = hashlib.sha256(f"{asset}|{MODEL}|{j}".encode()).hexdigest()[:24]
            ids.append(iid)
            top = json.dumps([{"feature": "vibration_rms", "contribution": round(score * 0.6, 3)},
                              {"feature": "temperature_mean", "contribution": round(score * 0.3, 3)}])
            ctx = json.dumps({"work_order": "WO-1001" if "line1" in asset else "WO-2002", "shift": shift})
            insights.append((iid, ts, asset, MODEL, MODEL_VERSION, MODEL_SHA, score, threshold,
                             _severity(score, threshold), ts - timedelta(seconds=30), ts, top, ctx))
    features: list[tuple[Any, ...]] = []
    for a_i, asset in enumerate(assets):
        end = now - timedelta(seconds=5 + a_i)
        feats = {"vibration_rms": 1.1 + a_i * 0.4, "vibration_kurtosis": 3.0 + a_i,
                 "temperature_mean": 41.5 + a_i * 2.25, "current_mean": 12.0 + a_i * 0.5}
        features.append((end - timedelta(seconds=30), end, asset, 30, 1.0 if a_i < 3 else 0.67, 0,
                         json.dumps(feats)))
    events = [
        (now - timedelta(seconds=250), "connection", "opcua:sim", None, "connected",
         json.dumps({"state": "up", "endpoint": "opc.tcp://127.0.0.1:4840"})),
        (now - timedelta(seconds=240), "connection", "mqtt:broker", None,
         "MQTT connected (session present: False)", json.dumps({"session_present": False})),
        (now - timedelta(seconds=30), "connection", "mes:mqtt", None, "MQTT disconnected: keepalive timeout",
         json.dumps({"reason": "keepalive timeout"})),
        (now - timedelta(seconds=20), "spool", "historian", None, "historian unavailable; spooling",
         json.dumps({"error": "OperationalError: connection refused"})),
        (now - timedelta(seconds=10), "spool", "historian", None,
         "historian answers again; draining the spool",
         json.dumps({"spool_rows": 3, "spool_bytes": 900})),
        (now - timedelta(seconds=280), "runtime", "inference", None, "model deployed",
         json.dumps({"model": MODEL, "version": MODEL_VERSION, "runtime": "onnxruntime",
                     "providers_in_use": ["CPUExecutionProvider"]})),
    ]
    dead = [
        (now - timedelta(seconds=100 + i * 7), "mqtt", "line2.press2.temperature" if i % 2 else None,
         ("out_of_range", "bad_payload", "unmapped_tag")[i % 3], f"detail {i}", b"{}")
        for i in range(5)
    ]
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction(), conn.cursor() as cur:
        with cur.copy("""COPY samples (ts, recv_ts, tag, value, quality, flags, source, asset, measure,
                                          unit, work_order, product, batch, shift) FROM STDIN""") as copy:
            for r in rows:
                copy.write_row(r)
        cur.executemany(
            """INSERT INTO insights (insight_id, ts, asset, model, model_version, model_sha256, score,
                       threshold, severity, window_start, window_end, top_features, context)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)""",
            insights,
        )
        cur.executemany(
            """INSERT INTO features (window_start, window_end, asset, n_samples, good_fraction, flags,
                       features) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)""",
            features,
        )
        cur.executemany(
            "INSERT INTO events (ts, kind, source, asset, message, detail) VALUES (%s,%s,%s,%s,%s,%s)",
            events,
        )
        cur.executemany(
            "INSERT INTO dead_letters (ts, source, tag, reason, detail, payload)"
            " VALUES (%s,%s,%s,%s,%s,%s)",
            dead,
        )
    return Filled(assets, ids, len(rows))


def feedback_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT insight_id, who, action, comment, db_role FROM operator_feedback ORDER BY id"
        ).fetchall()


def operator_events(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT source, asset, message, detail FROM events WHERE kind = 'operator' ORDER BY ts"
        ).fetchall()


@dataclass(frozen=True)
class Historian:
    admin_dsn: str
    reader_dsn: str
    filled: Filled


def make_historian(pg_dsn: str) -> Historian:
    """A migrated historian in the (fresh) database ``pg_dsn``, filled around FIXED_NOW."""
    reader = prepare_historian(pg_dsn)
    return Historian(pg_dsn, reader, fill_historian(pg_dsn))


async def wait_until(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)
