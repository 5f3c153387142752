"""`edge historian init|status|maintain`, and the embedded services the demo starts."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.app.cli import main
from edge.app.embedded.services import EmbeddedPostgres, start_mqtt_broker


def test_init_and_status(pg_dsn: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./firmware-config here: defaults
    monkeypatch.delenv("FE_CONFIG_DIR", raising=False)
    assert main(["historian", "init", "--dsn", pg_dsn, "--flavor", "postgres"]) == 0
    out = capsys.readouterr().out
    assert "flavor: postgres" in out
    assert "migrations applied now: 0001_core" in out
    assert "grant: edge_writer: INSERT, SELECT on samples" in out

    assert main(["historian", "init", "--dsn", pg_dsn]) == 0
    out = capsys.readouterr().out
    assert "migrations applied now: none" in out

    assert main(["historian", "status", "--dsn", pg_dsn]) == 0
    out = capsys.readouterr().out
    assert "flavor: postgres" in out
    assert "0001_core" in out
    assert "samples: 0" in out

    assert main(["historian", "maintain", "--dsn", pg_dsn]) == 0
    assert "aggregates refreshed" in capsys.readouterr().out

    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT value FROM historian_meta WHERE key = 'flavor'").fetchone()
        assert row == ("postgres",)


def test_init_errors(pg_dsn: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FE_CONFIG_DIR", raising=False)
    from tests.fixtures.services import free_port

    assert main(["historian", "init", "--dsn", f"postgresql://postgres@127.0.0.1:{free_port()}/x"]) == 1
    assert "cannot connect" in capsys.readouterr().err
    assert main(["historian", "status", "--dsn", pg_dsn]) == 1  # not initialised
    assert "not initialised" in capsys.readouterr().out
    assert main(["historian", "init", "--dsn", pg_dsn, "--flavor", "timescaledb"]) == 1
    assert "timescaledb" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["historian", "init", "--flavor", "oracle"])
    assert exc.value.code == 2


def test_init_takes_dsn_and_policies_from_config(pg_dsn: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "base.toml").write_text(f'[historian]\ndsn = "{pg_dsn}"\npartitions_ahead = 2\n'
                                        'retention = "10 days"\n')
    assert main(["historian", "init", "--dir", str(tmp_path)]) == 0
    assert "daily partitions 2 days ahead" in capsys.readouterr().out
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT value FROM historian_meta WHERE key = 'retention'").fetchone()
        assert row == ("10 days",)
    (tmp_path / "base.toml").write_text('[historian]\ndsnn = "x"\n')
    assert main(["historian", "init", "--dir", str(tmp_path)]) == 2
    assert "historian.dsnn" in capsys.readouterr().err


def test_embedded_postgres_starts_stops_and_takes_the_historian(tmp_path: Path) -> None:
    server = EmbeddedPostgres.start_new(data_dir=tmp_path / "pg")
    try:
        assert "127.0.0.1" in server.dsn
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
            assert row is not None and int(str(row[0])) >= 180000
            conn.execute("CREATE DATABASE hist")
        from edge.sinks.historian.admin import init_historian
        from edge.sinks.historian.settings import HistorianSettings

        with psycopg.connect(server.dsn_for("hist"), autocommit=True) as conn:
            assert init_historian(conn, HistorianSettings.model_validate({})).flavor == "postgres"
    finally:
        server.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn, connect_timeout=2)
    # the data folder survives a stop and starts again with its data
    again = EmbeddedPostgres.start_new(data_dir=tmp_path / "pg")
    try:
        with psycopg.connect(again.dsn_for("hist")) as conn:
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() != (0,)
    finally:
        again.stop(cleanup=True)
    assert not (tmp_path / "pg").exists()


def test_embedded_mqtt_broker() -> None:
    broker = start_mqtt_broker()
    try:
        assert broker.url.startswith("mqtt://127.0.0.1:")
        got: list[bytes] = []
        client = paho.Client(CallbackAPIVersion.VERSION2)
        client.on_message = lambda c, u, m: got.append(m.payload)
        client.connect("127.0.0.1", broker.port)
        client.subscribe("fe/test", qos=1)
        client.loop_start()
        try:
            import time

            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                client.publish("fe/test", b"hello", qos=1)
                time.sleep(0.2)
        finally:
            client.loop_stop()
            client.disconnect()
        assert got and got[0] == b"hello"
    finally:
        broker.stop()
