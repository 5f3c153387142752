"""The plugin tables: every source, codec, runtime, model kind and sink the appliance can build, by name.

Each list is the one place its kind is enumerated: the pipeline, the CLI's choices, training and the config
checks read them, and no per-kind branch exists elsewhere. To add a plugin, add its folder (README.md,
sample.toml, code, tests in the mirrored tree) and one entry here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.component import Component, Emit, EventHook
from edge.core.envelope import Envelope
from edge.core.metrics import Metrics
from edge.core.plugins import Plugin, find
from edge.core.settings import BrokerSettings, MetricsSettings, PipelineSettings, SecretRef, SpoolSettings
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.jetstream.settings import JetStreamSettings, SiteHistorianSettings
from inference.settings import InferenceSettings, SparkplugSettings
from ingest.codecs import Codec
from ingest.settings import MqttSourceSettings, OpcUaSourceSettings


@dataclass
class BuildContext:
    """What a factory may use besides its own settings: shared services and where its output goes."""

    box_id: str
    historian_dsn: str
    historian_password: SecretRef | None
    broker: BrokerSettings  # the [broker] section with any command-line URL applied
    pipeline: PipelineSettings
    spool: SpoolSettings
    inference: InferenceSettings
    metrics: Metrics
    on_event: EventHook
    emit: Emit  # where sources put their batches


# -- codecs: MQTT payloads to samples --------------------------------------------------------------------

CodecFactory = Callable[[MqttSourceSettings], Codec]


def _json_codec(settings: MqttSourceSettings) -> Codec:
    from ingest.codecs.json.codec import JsonCodec

    return JsonCodec.from_settings(settings)


def _sparkplug_codec(settings: MqttSourceSettings) -> Codec:
    from ingest.codecs.sparkplug.codec import SparkplugCodec

    return SparkplugCodec.from_settings(settings)


CODECS: Sequence[Plugin[MqttSourceSettings, CodecFactory]] = (
    Plugin("json", MqttSourceSettings, _json_codec, "ingest.codecs.json",
           "JSON, one sample or many a message"),
    Plugin("sparkplug", MqttSourceSettings, _sparkplug_codec, "ingest.codecs.sparkplug",
           "Sparkplug B births, data and deaths"),
)


def make_codec(settings: MqttSourceSettings) -> Codec:
    """The codec an MQTT source's settings name."""
    return find(CODECS, settings.codec, kind="codec").factory(settings)


# -- sources ---------------------------------------------------------------------------------------------

SourceFactory = Callable[[Any, BuildContext], Component]


def _opcua_source(settings: OpcUaSourceSettings, ctx: BuildContext) -> Component:
    from ingest.sources.opcua.source import OpcUaSource

    return OpcUaSource(settings, ctx.emit, pipeline=ctx.pipeline)


def _mqtt_source(settings: MqttSourceSettings, ctx: BuildContext) -> Component:
    from ingest.sources.mqtt.source import MqttSource

    # The cut journal (beside the spool) makes a redelivery after a crash batch as before, so the
    # historian's ledger recognises what was committed: nothing stored twice.
    return MqttSource(settings, ctx.broker, ctx.emit, batch_rows=ctx.pipeline.batch_rows,
                      batch_ms=ctx.pipeline.batch_ms, codec=make_codec(settings),
                      cut_journal=settings.cut_journal or ctx.spool.dir / f"{settings.name}.cuts")


# The name is the key under [sources] (a list of tables each).
SOURCES: Sequence[Plugin[Any, SourceFactory]] = (
    Plugin("opcua", OpcUaSourceSettings, _opcua_source, "ingest.sources.opcua", "OPC-UA subscriptions"),
    Plugin("mqtt", MqttSourceSettings, _mqtt_source, "ingest.sources.mqtt", "MQTT topics through a codec"),
)


# -- runtimes: where a model package is scored -----------------------------------------------------------

RuntimeFactory = Callable[[InferenceSettings, Any, "EventHook | None"], Any]


def _onnx_runtime(settings: InferenceSettings, pkg: Any, on_event: EventHook | None = None) -> Any:
    from inference.runtimes.onnx.runtime import build

    return build(settings, pkg, on_event)


def _triton_runtime(settings: InferenceSettings, pkg: Any, on_event: EventHook | None = None) -> Any:
    from inference.runtimes.triton.runtime import build

    return build(settings, pkg, on_event)


RUNTIMES: Sequence[Plugin[InferenceSettings, RuntimeFactory]] = (
    Plugin("onnx", InferenceSettings, _onnx_runtime, "inference.runtimes.onnx", "ONNX Runtime in process"),
    Plugin("triton", InferenceSettings, _triton_runtime, "inference.runtimes.triton",
           "a Triton Inference Server"),
)


def make_runtime(settings: InferenceSettings, pkg: Any, on_event: EventHook | None = None) -> Any:
    """The runtime ``settings.runtime`` names, for one model package."""
    return find(RUNTIMES, settings.runtime, kind="runtime").factory(settings, pkg, on_event)


# -- sinks: where committed data and insights go ---------------------------------------------------------

# A sink factory gets the whole build context and its own section; it returns its components (none when
# the section leaves it off).
SinkFactory = Callable[[Any, BuildContext], list[Component]]


HistorianFactory = Callable[[HistorianSettings, BuildContext, "asyncio.Queue[Envelope]"], list[Component]]


def _historian(settings: HistorianSettings, ctx: BuildContext,
               inbox: asyncio.Queue[Envelope]) -> list[Component]:
    """The historian sink (writer, spool) on the queue every stage writes to, and its maintenance."""
    from edge.sinks.historian.maintenance import HistorianMaintenance
    from edge.sinks.historian.sink import HistorianSink
    from edge.sinks.historian.spool import Spool
    from edge.sinks.historian.writer import HistorianWriter

    writer = HistorianWriter(settings, dsn=ctx.historian_dsn)
    spool = Spool(ctx.spool, metrics=ctx.metrics).open()
    return [
        HistorianMaintenance(ctx.historian_dsn, password=settings.password,
                             interval_s=settings.maintenance_interval_s, on_event=ctx.on_event),
        HistorianSink(inbox, writer, spool, write_timeout_s=settings.write_timeout_s, metrics=ctx.metrics,
                      on_event=ctx.on_event),
    ]


# Every row reaches the historian first; there is one, so it is an entry of its own, not a list.
HISTORIAN: Plugin[HistorianSettings, HistorianFactory] = Plugin(
    "historian", HistorianSettings, _historian, "edge.sinks.historian",
    "TimescaleDB or PostgreSQL, with store-and-forward")


def _outbox_sink(settings: BrokerSettings, ctx: BuildContext) -> list[Component]:
    sparkplug = ctx.inference.sparkplug
    if sparkplug.enabled and not sparkplug.keep_json:  # the Sparkplug node replaces the JSON topics
        return []
    from edge.sinks.outbox.publisher import OutboxPublisher

    return [OutboxPublisher(ctx.historian_dsn, settings, password=ctx.historian_password,
                            metrics=ctx.metrics)]


def _sparkplug_sink(settings: SparkplugSettings, ctx: BuildContext) -> list[Component]:
    if not settings.enabled:
        return []
    from ingest.codecs.sparkplug.publisher import SparkplugPublisher

    node_id = settings.edge_node_id or re.sub(r"[/+#]", "_", ctx.box_id)
    bdseq_file = Path(ctx.spool.dir) / f"sparkplug-{settings.group_id}-{node_id}.bdseq"
    return [SparkplugPublisher(ctx.historian_dsn, ctx.broker, group_id=settings.group_id,
                               edge_node_id=node_id, bdseq_file=bdseq_file,
                               password=ctx.historian_password, metrics=ctx.metrics, on_event=ctx.on_event)]


def _metrics_sink(settings: MetricsSettings, ctx: BuildContext) -> list[Component]:
    if not settings.enabled:
        return []
    from edge.sinks.metrics.server import MetricsServer

    return [MetricsServer(ctx.metrics, listen=settings.listen, state_file=settings.state_file,
                          state_interval_s=settings.state_interval_s)]


def _jetstream_sink(settings: JetStreamSettings, ctx: BuildContext) -> list[Component]:
    if not settings.enabled:
        return []
    from edge.sinks.jetstream.heartbeat import Heartbeat
    from edge.sinks.jetstream.publisher import JetStreamSink
    from edge.sinks.jetstream.suppressions import HistorianSuppressions

    spool = ctx.spool.model_copy(update={"dir": settings.spool_dir or Path(ctx.spool.dir) / "jetstream",
                                         "max_bytes": settings.spool_max_bytes})
    suppressions = HistorianSuppressions(ctx.historian_dsn, password=ctx.historian_password)
    sink = JetStreamSink(settings, box=ctx.box_id, site=settings.site, spool=spool,
                         inbox_batches=ctx.pipeline.queue_batches, metrics=ctx.metrics, on_event=ctx.on_event,
                         suppressions=suppressions)
    return [sink, Heartbeat(settings, box=ctx.box_id, site=settings.site, sink=sink, metrics=ctx.metrics)]


def _site_historian(settings: SiteHistorianSettings, ctx: BuildContext) -> list[Component]:
    if not settings.enabled:
        return []
    from edge.sinks.historian.writer import HistorianWriter
    from edge.sinks.jetstream.site_historian import SiteHistorian

    writer = HistorianWriter(HistorianSettings.model_validate(
        {"dsn": ctx.historian_dsn, "password": ctx.historian_password}))
    return [SiteHistorian(settings, writer, site=settings.site, metrics=ctx.metrics, on_event=ctx.on_event)]


# Sinks after the historian: each reads committed rows (the outbox) or the process's counters. The
# settings path says which config section feeds the factory.
SINKS: Sequence[tuple[str, Plugin[Any, SinkFactory]]] = (
    ("broker", Plugin("outbox", BrokerSettings, _outbox_sink, "edge.sinks.outbox",
                      "insights as JSON on the UNS topics, from the outbox")),
    ("inference.sparkplug", Plugin("sparkplug", SparkplugSettings, _sparkplug_sink, "ingest.codecs.sparkplug",
                                   "insights as a Sparkplug B edge node, from the outbox",
                                   sample="sample.sink.toml")),
    ("metrics", Plugin("metrics", MetricsSettings, _metrics_sink, "edge.sinks.metrics",
                       "the Prometheus endpoint and the state file")),
    ("jetstream", Plugin("jetstream", JetStreamSettings, _jetstream_sink, "edge.sinks.jetstream",
                         "batches to the site's JetStream streams (Arrow IPC), and the fleet heartbeat")),
    ("site_historian", Plugin("site_historian", SiteHistorianSettings, _site_historian,
                              "edge.sinks.jetstream",
                              "the site streams into the central historian (durable pull consumer)",
                              sample="sample.site.toml")),
)


# -- model kinds: what ``edge models train --kind`` fits -------------------------------------------------

from inference.models.autoencoder.settings import AutoencoderSettings  # noqa: E402
from inference.models.base import ModelKind  # noqa: E402
from inference.models.iforest.settings import IforestSettings  # noqa: E402
from inference.models.knn.settings import KnnSettings  # noqa: E402
from inference.models.pca.settings import PcaSettings  # noqa: E402
from inference.models.shewhart.settings import ShewhartSettings  # noqa: E402

ModelKindFactory = Callable[[], ModelKind[Any]]


def _pca_kind() -> ModelKind[Any]:
    from inference.models.pca.kind import KIND

    return KIND


def _iforest_kind() -> ModelKind[Any]:
    from inference.models.iforest.kind import KIND

    return KIND


def _knn_kind() -> ModelKind[Any]:
    from inference.models.knn.kind import KIND

    return KIND


def _shewhart_kind() -> ModelKind[Any]:
    from inference.models.shewhart.kind import KIND

    return KIND


def _autoencoder_kind() -> ModelKind[Any]:
    from inference.models.autoencoder.kind import KIND

    return KIND


MODEL_KINDS: Sequence[Plugin[Any, ModelKindFactory]] = (
    Plugin("pca", PcaSettings, _pca_kind, "inference.models.pca", "PCA with Hotelling T² and SPE limits"),
    Plugin("iforest", IforestSettings, _iforest_kind, "inference.models.iforest",
           "scikit-learn IsolationForest"),
    Plugin("knn", KnnSettings, _knn_kind, "inference.models.knn",
           "mean distance to the k nearest training windows"),
    Plugin("autoencoder", AutoencoderSettings, _autoencoder_kind, "inference.models.autoencoder",
           "dense autoencoder on the standardized features (PyTorch; the train-torch extra)"),
    Plugin("shewhart", ShewhartSettings, _shewhart_kind,
           "inference.models.shewhart", "per-feature Shewhart limits: the largest standardized deviation"),
)


def model_kind(name: str) -> ModelKind[Any]:
    """The model kind called ``name``."""
    return find(MODEL_KINDS, name, kind="model kind").factory()
