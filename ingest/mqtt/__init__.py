"""MQTT ingest: a paho-mqtt 2.x source with JSON and Sparkplug B codecs (``ingest.codecs``)."""

from ingest.mqtt.source import MqttSource, make_codec

__all__ = ["MqttSource", "make_codec"]
