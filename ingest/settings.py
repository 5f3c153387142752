"""Ingest config sections: sources and the data-quality gate."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.core.settings import SecretRef, Section, TlsSettings


class OpcUaNode(Section):
    """One subscribed node. ``node`` is ``nsu=URI;s=ID`` (or i=, g=, b=) or a browse path, never a bare
    namespace index."""

    tag: str
    node: str
    deadband: Literal["none", "absolute", "percent"] = "none"
    deadband_value: float = 0.0


class OpcUaSourceSettings(Section):
    name: str
    endpoint: str
    security_policy: Literal[
        "None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"
    ] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    username: str | None = None
    password: SecretRef | None = None
    trust_on_first_use: bool = False
    timestamp: Literal["source", "server", "receive"] = "source"
    publishing_interval_ms: int = Field(100, ge=10)
    sampling_interval_ms: int = Field(100, ge=0)
    queue_size: int = Field(10, ge=1)
    max_nodes_per_subscription: int = Field(1000, ge=1)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    pki_dir: Path = Path("/var/lib/factory-edge/pki")  # own certificate, trusted/ and rejected/ servers
    request_timeout_s: float = Field(10.0, gt=0)
    publish_requests: int = Field(0, ge=0, le=16)  # publish requests in flight; 0 = subscriptions + 1
    fast_decode: bool = True  # decode data-change responses without asyncua's per-value objects
    nodes: list[OpcUaNode] = Field(default_factory=list)


class MqttSourceSettings(Section):
    name: str
    topics: list[str]
    codec: Literal["json", "sparkplug"] = "json"
    qos: Literal[0, 1] = 1
    shared_group: str | None = None
    url: str | None = None  # default: the [broker] section
    username: str | None = None
    password: SecretRef | None = None
    tls: TlsSettings | None = None
    # JSON codec: where things are in a message.
    tag_from_topic: str = "{topic}"
    value_path: str = "value"
    ts_path: str = "ts"
    quality_path: str | None = "quality"
    samples_path: str | None = None  # a list of samples in one message
    # Session, batching, JSON topic pattern and Sparkplug B host settings.
    client_id: str | None = None  # default "fe-<name>"; stable, so a persistent session survives restarts
    protocol: Literal["5", "3.1.1"] | None = None  # default: the [broker] section
    clean_start: bool = False  # False + session expiry: a persistent session (QoS 1 kept while away)
    session_expiry_s: int | None = Field(default=None, ge=0)  # default: the [broker] section
    receive_maximum: int = Field(default=10_000, ge=1, le=65_535)  # QoS 1 in flight, unacknowledged
    batch_rows: int | None = Field(default=None, ge=1)  # default: the [pipeline] section
    batch_ms: int | None = Field(default=None, ge=1)
    topic_pattern: str | None = None  # "plant/{line}/{machine}/{measure}": names for tag_from_topic
    tag_path: str | None = None  # per-sample tag name inside the payload ({name} in tag_from_topic)
    ts_format: Literal["auto", "iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"] = "auto"
    sparkplug_host_id: str | None = None  # publish spBv1.0/STATE/<id> (retained, QoS 1, with a will)
    sparkplug_tag_template: str = "{group}/{node}/{device}/{metric}"
    sparkplug_node_tag_template: str = "{group}/{node}/{metric}"
    sparkplug_rebirth_interval_s: float = Field(default=5.0, ge=0)
    cut_journal: Path | None = None  # where batches were cut, so a redelivery after a crash is cut alike
    decode_workers: int | None = Field(
        default=None, ge=0, le=8,
        description="JSON codec: worker processes that decode payloads off the network thread (0 = decode "
        "in the network thread). Default (unset): 1 on a host with 2 or more cores, else 0. The network "
        "thread runs paho and, without a worker, the codec too; a worker moves the decoding to another core, "
        "which matters most for batched payloads. More workers than spare cores do not help. The Sparkplug "
        "codec keeps per-node state and always decodes in the network thread.",
    )


class SourcesSettings(Section):
    opcua: list[OpcUaSourceSettings] = Field(default_factory=list)
    mqtt: list[MqttSourceSettings] = Field(default_factory=list)


class QualitySettings(Section):
    max_future_s: float = Field(5.0, ge=0)
    max_past_s: float = Field(7 * 24 * 3600.0, ge=0, description="dead-letter samples older than this")
    accept_past: bool = Field(
        False,
        description="accept samples of any age (the max_past_s rule off): for replaying history, with "
        "inference.clock = 'event'",
    )
    stuck_samples: int = Field(50, ge=2)
    spike_sigma: float = Field(8.0, gt=0)
    drop_duplicates: bool = True
    unmapped: Literal["dead_letter", "keep"] = "keep"
