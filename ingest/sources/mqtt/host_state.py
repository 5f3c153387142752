"""The Sparkplug B host application's STATE (Sparkplug 3.0), when ``sparkplug_host_id`` is set: online
(retained, QoS 1) on every connect before subscribing, offline as the MQTT will and on a clean stop."""

from __future__ import annotations

import time

from paho.mqtt.client import Client

from ingest.codecs.sparkplug.payload import NAMESPACE, state_payload


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_id}"


def set_offline_will(client: Client, host_id: str, ts_ms: int) -> None:
    """The will the broker publishes when the connection is lost: STATE offline."""
    client.will_set(state_topic(host_id), state_payload(False, ts_ms), qos=1, retain=True)


def announce_online(client: Client, host_id: str, ts_ms: int) -> None:
    client.publish(state_topic(host_id), state_payload(True, ts_ms), qos=1, retain=True)


def announce_offline(client: Client, host_id: str, ts_ms: int, wait_s: float = 2.0) -> None:
    """STATE offline, serviced until the broker has it (or ``wait_s`` passed, or the connection is gone)."""
    info = client.publish(state_topic(host_id), state_payload(False, ts_ms), qos=1, retain=True)
    deadline = time.monotonic() + wait_s
    while not info.is_published() and time.monotonic() < deadline and client.is_connected():
        client.loop(timeout=0.02)
