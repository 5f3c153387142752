"""Shared fixtures: a fresh database on the real PostgreSQL, a unique topic prefix on the real broker.

Each test that asks for ``pg_dsn`` gets a database of its own (dropped afterwards), on the server named by
``FE_TEST_PG_DSN`` (default 127.0.0.1:5432) or, where nothing answers there, on an embedded PostgreSQL
started once for the session. ``mqtt`` gives the broker URL from ``FE_TEST_MQTT_URL`` (default
127.0.0.1:1883, else a ``mosquitto`` of our own) and a topic prefix no other test uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest

from tests.fixtures.services import (
    MosquittoProcess,
    default_mqtt_url,
    default_pg_dsn,
    mqtt_host_port,
    pg_answers,
    port_open,
)

pytest_plugins = ["tests.fixtures.triton.plugin", "tests.fixtures.timescale.plugin"]


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL superuser connection to the maintenance database."""
    dsn = default_pg_dsn()
    if pg_answers(dsn):
        yield dsn
        return
    from edge.app.embedded.services import EmbeddedPostgres

    server = EmbeddedPostgres.start_new()
    try:
        yield server.dsn
    finally:
        server.stop(cleanup=True)


def _with_dbname(dsn: str, dbname: str) -> str:
    u = urlparse(dsn)
    return urlunparse(u._replace(path=f"/{dbname}"))


@pytest.fixture
def pg_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A fresh, empty database for this test; dropped afterwards."""
    name = f"fe_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_dbname(pg_server_dsn, name)
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class MqttTarget:
    url: str
    host: str
    port: int
    prefix: str  # unique per test: every topic a test uses starts with it

    def topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))


@pytest.fixture(scope="session")
def mqtt_server_url() -> Iterator[str]:
    url = default_mqtt_url()
    host, port = mqtt_host_port(url)
    if port_open(host, port):
        yield url
        return
    broker = MosquittoProcess().start()
    try:
        yield broker.url
    finally:
        broker.cleanup()


@pytest.fixture
def mqtt(mqtt_server_url: str) -> MqttTarget:
    host, port = mqtt_host_port(mqtt_server_url)
    return MqttTarget(mqtt_server_url, host, port, f"fe-test/{uuid.uuid4().hex[:10]}")


@pytest.fixture
def own_mosquitto() -> Iterator[MosquittoProcess]:
    """A mosquitto of this test's own, on a free port, that the test may stop and start."""
    broker = MosquittoProcess().start()
    try:
        yield broker
    finally:
        broker.cleanup()
