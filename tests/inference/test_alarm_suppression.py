"""A false-alarm label suppresses repeats (migration 0045) on the real historian: matching warning and
alarm insights written by the historian writer are stored flagged with the suppression's id and kept out
of the MES outbox; others are not; ``edge models suppress list|add|lift`` shows, makes and lifts them, and
every change is an event."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest

from edge.app.cli import main as edge_main
from edge.core.metrics import Metrics
from edge.core.settings import BrokerSettings
from edge.sinks.outbox.publisher import OutboxPublisher
from inference.suppressions import create
from tests.conftest import MqttTarget
from tests.edge.sinks.outbox.test_publisher import MesSubscriber
from tests.fixtures.delivery_helpers import async_wait_until
from tests.inference.lifecycle_history import T0, new_historian
from tests.inference.suppression_support import Row, flags, label, write_insights

OTHER = "acme/plant1/line1/press2"


def test_false_alarm_label_suppresses_repeats_until_lifted(pg_dsn: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    new_historian(pg_dsn)
    (first,) = write_insights(pg_dsn, [Row(T0, ["a_rms", "b_mean", "c_kurt", "d_p2p"])])
    fid = label(pg_dsn, first)
    capsys.readouterr()
    assert edge_main(["models", "suppress", "add", str(fid), "--hours", "2", "--who", "ben", "--reason",
                      "known seal noise", "--dsn", pg_dsn]) == 0
    assert "suppression #" in capsys.readouterr().out

    h = timedelta(hours=1)
    rows = {
        "same, reordered": Row(T0 + h, ["c_kurt", "a_rms", "b_mean", "z_other"]),
        "warning repeat": Row(T0 + h + timedelta(minutes=1), ["a_rms", "b_mean", "c_kurt"], "warning"),
        "ok repeat": Row(T0 + h + timedelta(minutes=2), ["a_rms", "b_mean", "c_kurt"], "ok"),
        "other features": Row(T0 + h + timedelta(minutes=3), ["a_rms", "b_mean", "x_new"]),
        "other asset": Row(T0 + h + timedelta(minutes=4), ["a_rms", "b_mean", "c_kurt"], asset=OTHER),
        "other model": Row(T0 + h + timedelta(minutes=5), ["a_rms", "b_mean", "c_kurt"], model="spindle"),
        "after the window": Row(T0 + 2 * h + timedelta(seconds=1), ["a_rms", "b_mean", "c_kurt"]),
    }
    ids = dict(zip(rows, write_insights(pg_dsn, list(rows.values())), strict=True))
    got = flags(pg_dsn, ids.values())
    with psycopg.connect(pg_dsn) as conn:
        (sid,) = conn.execute("SELECT id FROM alarm_suppressions").fetchone() or (None,)
    suppressed = {k for k, iid in ids.items() if got[iid][0]}
    assert suppressed == {"same, reordered", "warning repeat"}
    for k in suppressed:
        assert got[ids[k]] == (True, sid, False)  # stored, flagged with its suppression, not queued for MES
    for k in set(rows) - suppressed:
        assert got[ids[k]] == (False, None, True)
    assert flags(pg_dsn, [first])[first] == (False, None, True)  # the labelled alarm itself went out

    capsys.readouterr()
    assert edge_main(["models", "suppress", "list", "--dsn", pg_dsn]) == 0
    out = capsys.readouterr().out
    assert f"#{sid} " in out and "[a_rms, b_mean, c_kurt]" in out and "2 suppressed" in out and "ben" in out

    assert edge_main(["models", "suppress", "lift", str(sid), "--who", "cara", "--reason", "seal replaced",
                      "--dsn", pg_dsn]) == 0
    (again,) = write_insights(pg_dsn, [Row(T0 + h + timedelta(minutes=30), ["a_rms", "b_mean", "c_kurt"])])
    assert flags(pg_dsn, [again])[again] == (False, None, True)  # lifted: repeats raise alarms again
    capsys.readouterr()
    assert edge_main(["models", "suppress", "list", "--dsn", pg_dsn]) == 0
    assert "no suppressions" in capsys.readouterr().out
    assert edge_main(["models", "suppress", "list", "--all", "--dsn", pg_dsn]) == 0
    assert "lifted by cara: seal replaced" in capsys.readouterr().out

    with psycopg.connect(pg_dsn) as conn:
        events = conn.execute(
            "SELECT detail->>'action', detail->>'who', detail->>'comment', "
            "(detail->>'suppression_id')::bigint "
            "FROM events WHERE kind = 'suppression' ORDER BY ts").fetchall()
    assert events == [("created", "ben", "known seal noise", sid), ("lifted", "cara", "seal replaced", sid)]


def test_suppression_refusals(pg_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    new_historian(pg_dsn)
    first, bare = write_insights(pg_dsn, [Row(T0, ["a_rms"]), Row(T0, [])])
    dsn = ["--dsn", pg_dsn]
    capsys.readouterr()
    ack = label(pg_dsn, first, "ack")
    assert edge_main(["models", "suppress", "add", str(ack), "--hours", "1", *dsn]) == 1
    assert "not a false_alarm label" in capsys.readouterr().err
    fid = label(pg_dsn, first)
    assert edge_main(["models", "suppress", "add", str(fid), "--hours", "0", *dsn]) == 1
    assert "hours" in capsys.readouterr().err
    assert edge_main(["models", "suppress", "add", str(label(pg_dsn, bare)), "--hours", "1", *dsn]) == 1
    assert "no leading features" in capsys.readouterr().err
    assert edge_main(["models", "suppress", "lift", "99", "--reason", "x", *dsn]) == 1
    assert "no active suppression 99" in capsys.readouterr().err
    assert edge_main(["models", "suppress", "add", str(fid), "--hours", "1", *dsn]) == 0
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE kind = 'suppression'").fetchone() == (1,)
        (sid,) = conn.execute("SELECT id FROM alarm_suppressions").fetchone() or (0,)
    assert edge_main(["models", "suppress", "lift", str(sid), "--reason", "x", *dsn]) == 0
    assert edge_main(["models", "suppress", "lift", str(sid), "--reason", "x", *dsn]) == 1  # once only


async def test_suppressed_repeats_never_reach_mes_over_mqtt(pg_dsn: str, mqtt: MqttTarget) -> None:
    new_historian(pg_dsn)
    lead = ["a_rms", "b_mean"]
    (first,) = write_insights(pg_dsn, [Row(T0, lead)])
    create(pg_dsn, label(pg_dsn, first), 1.0, who="ben")
    minute = timedelta(minutes=1)
    ids = write_insights(pg_dsn, [Row(T0 + k * minute, lead if k % 2 else ["x_new"]) for k in range(1, 9)])
    suppressed = {i for i, f in flags(pg_dsn, ids).items() if f[0]}
    assert len(suppressed) == 4
    mes = MesSubscriber(mqtt.port, f"{mqtt.prefix}/#")
    metrics = Metrics()
    broker = BrokerSettings.model_validate({"url": mqtt.url, "topic_prefix": mqtt.prefix})
    pub = OutboxPublisher(pg_dsn, broker, metrics=metrics)
    task = asyncio.create_task(pub.run())
    try:
        await async_wait_until(lambda: len(set(mes.ids())) >= 5, 30, "the unsuppressed insights received")
        await asyncio.sleep(1.0)  # room for anything that should not come
    finally:
        await pub.stop()
        await asyncio.wait_for(task, 10)
        mes.close()
    assert set(mes.ids()) == {first, *(set(ids) - suppressed)}
