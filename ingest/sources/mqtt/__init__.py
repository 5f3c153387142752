"""MQTT ingest: a paho-mqtt 2.x source with JSON and Sparkplug B codecs (``ingest.codecs``).

``MqttSource`` and ``make_codec`` are imported on first use, so that the decode worker process
(``python -m ingest.sources.mqtt.decode_worker``) starts without loading paho and the source's other
dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.sources.mqtt.source import MqttSource, make_codec

__all__ = ["MqttSource", "make_codec"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ingest.sources.mqtt import source

        return getattr(source, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
