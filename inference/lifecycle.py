"""Lifecycle messages on MQTT, so MES and ops tools can follow a model's life on the box.

Topics (under ``broker.topic_prefix`` when set), QoS 1, not retained:

* ``_models/<model>/lifecycle``: ``candidate_ready``, ``gate_passed``, ``gate_failed``, ``promoted``,
  ``rolled_back``, ``notice`` (the managed mode kept a challenger, and says why);
* ``<asset path>/_events/drift``: ``drift_started``, ``drift_ended`` (the model's equipment; a model over
  several equipment publishes under ``_models/<model>/_events/drift``).

Payload (JSON, schema ``inference/lifecycle.schema.json``)::

    {"schema": 1, "event": "promoted", "ts": "2026-11-02T08:00:00.000000Z", "model": "press",
     "version": "3", "scope": "all", "who": "lifecycle", "reason": "managed: ...", "detail": {...}}

Model events are made from the registry's audit entries (``from_audit``), in the audit's order; drift
events from the inference stage's drift events (``from_drift``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

EVENTS = ("candidate_ready", "gate_passed", "gate_failed", "promoted", "rolled_back", "notice",
          "drift_started", "drift_ended")


def _prefix(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/" if prefix else ""


def model_topic(prefix: str, model: str) -> str:
    return f"{_prefix(prefix)}_models/{model}/lifecycle"


def drift_topic(prefix: str, model: str, asset: str | None) -> str:
    where = asset if asset else f"_models/{model}"
    return f"{_prefix(prefix)}{where}/_events/drift"


def message(event: str, model: str, version: str | None, *, ts: str, scope: str | None = None,
            who: str | None = None, reason: str = "", detail: dict[str, Any] | None = None) -> dict[str, Any]:
    if event not in EVENTS:
        raise ValueError(f"unknown lifecycle event {event!r}")
    return {"schema": 1, "event": event, "ts": ts, "model": model, "version": version, "scope": scope,
            "who": who, "reason": reason, "detail": detail or {}}


def from_audit(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The lifecycle message of a registry audit entry (None for those MES need not follow)."""
    action, d = entry.get("action"), entry.get("detail") or {}
    event = None
    if action == "retrain":
        event = "candidate_ready"
    elif action == "gate":
        event = "gate_passed" if d.get("passed") else "gate_failed"
        d = {k: d[k] for k in ("passed", "reasons", "false_alarm_rate", "detection_rate", "since", "until")
             if k in d}
    elif action in ("promote", "alias") and d.get("role") == "champion" and entry.get("version"):
        event = "promoted"
    elif action == "rollback":
        event = "rolled_back"
    elif action == "notice":
        event = "notice"
    if event is None:
        return None
    return message(event, str(entry["model"]), entry.get("version"), ts=str(entry["ts"]),
                   scope=d.get("scope"), who=entry.get("who"), reason=str(d.get("reason") or ""), detail=d)


def from_drift(detail: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = ("features", "score_psi", "psi", "gated_share", "assets")
    keep: dict[str, Any] = {k: detail[k] for k in fields if k in detail}
    return message("drift_started" if detail.get("drift") else "drift_ended", str(detail["model"]), version,
                   ts=ts, detail=keep)


def topic_of(prefix: str, msg: dict[str, Any]) -> str:
    if msg["event"].startswith("drift_"):
        assets = msg["detail"].get("assets") or []
        return drift_topic(prefix, msg["model"], assets[0] if len(assets) == 1 else None)
    return model_topic(prefix, msg["model"])


class LifecycleNotifier:
    """Publishes lifecycle messages, QoS 1, each acknowledged by the broker before the next batch."""

    def __init__(self, broker: Any, *, url: str | None = None, timeout_s: float = 10.0) -> None:
        self.broker = broker
        self.url = url
        self.timeout_s = timeout_s
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, messages: Sequence[dict[str, Any]]) -> None:
        """Publish ``messages`` in order (one connection per call: the lifecycle is rare)."""
        from edge.core.mqtt import connect, make_client

        if not messages:
            return
        client, address, props = make_client(self.broker, client_id=f"fe-lifecycle-{uuid.uuid4().hex[:6]}",
                                              url=self.url)
        up = threading.Event()
        client.on_connect = lambda c, u, f, rc, p: up.set()
        client.loop_start()
        try:
            connect(client, address, props)
            if not up.wait(self.timeout_s):
                raise ConnectionError(f"lifecycle messages: broker {address.host}:{address.port} did not "
                                      "answer (check [broker] url)")
            for msg in messages:
                topic = topic_of(self.broker.topic_prefix, msg)
                info = client.publish(topic, orjson.dumps(msg), qos=1)
                info.wait_for_publish(self.timeout_s)
                self.sent.append((topic, msg))
        finally:
            client.disconnect()
            client.loop_stop()
