"""MQTT ingest: a paho-mqtt 2.x source decoding through a codec (``ingest.codecs``: JSON, Sparkplug B).

``MqttSource`` is imported on first use, so that the decode worker process
(``python -m ingest.sources.mqtt.decode_worker``) starts without loading paho and the source's other
dependencies. The caller builds the codec (``edge.app.plugins.make_codec``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.sources.mqtt.source import MqttSource

__all__ = ["MqttSource"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ingest.sources.mqtt import source

        return getattr(source, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
