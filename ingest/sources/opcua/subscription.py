"""Subscriptions that hand each publish response to the source whole, and their monitored items."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.ua.attribute_ids import AttributeIds

from ingest.settings import OpcUaSourceSettings
from ingest.sources.opcua.columns import Columns
from ingest.sources.opcua.fastdecode import DataChangeColumns

log = logging.getLogger("ingest.sources.opcua")


class Receiver(Protocol):
    """What takes the publish responses (``OpcUaSource``)."""

    name: str
    settings: OpcUaSourceSettings
    tags: list[str]
    batch_rows: int
    _cols: Columns

    def _take(self, items: list[ua.MonitoredItemNotification], handles: dict[int, int]) -> None: ...

    def _take_columns(self, dc: DataChangeColumns, handles: dict[int, int]) -> None: ...

    def _status_change(self, status: ua.StatusCode) -> None: ...

    async def flush(self) -> None: ...


class BulkSubscription(Subscription):
    """A subscription that hands each publish response to the source whole (no per-value task)."""

    def __init__(self, session: Any, params: ua.CreateSubscriptionParameters, source: Receiver,
                 handles: dict[int, int]) -> None:
        super().__init__(session, params, handler=None, queue_maxsize=1)
        self._source = source
        self._handles = handles  # client handle -> tag index

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        message = publish_result.NotificationMessage
        if not message.NotificationData:
            return
        self.last_sequence_number = int(message.SequenceNumber)
        source = self._source
        for notif in message.NotificationData:
            if notif.__class__ is DataChangeColumns:
                source._take_columns(notif, self._handles)
            elif isinstance(notif, ua.DataChangeNotification):
                source._take(notif.MonitoredItems, self._handles)
            elif isinstance(notif, ua.StatusChangeNotification):
                source._status_change(notif.Status)
        if source._cols.n >= source.batch_rows:
            await source.flush()


async def subscribe(source: Receiver, client: Client, items: list[tuple[int, ua.NodeId]],
                    handles: dict[int, int]) -> None:
    """One subscription with a monitored item per (tag index, node id) of ``items``."""
    s = source.settings
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = float(s.publishing_interval_ms)
    params.RequestedLifetimeCount = 10000
    params.RequestedMaxKeepAliveCount = client.get_keepalive_count(float(s.publishing_interval_ms))
    params.MaxNotificationsPerPublish = 0  # no cap from our side
    params.PublishingEnabled = True
    params.Priority = 0
    sub = BulkSubscription(client.uaclient.session, params, source, handles)
    await sub.init()
    requests = []
    for i, nodeid in items:
        node_cfg = s.nodes[i]
        rv = ua.ReadValueId(NodeId=nodeid, AttributeId=AttributeIds.Value)
        mp = ua.MonitoringParameters()
        mp.ClientHandle = i + 1
        mp.SamplingInterval = float(s.sampling_interval_ms)
        mp.QueueSize = s.queue_size
        mp.DiscardOldest = True
        if node_cfg.deadband != "none":
            mp.Filter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=1 if node_cfg.deadband == "absolute" else 2,
                DeadbandValue=node_cfg.deadband_value,
            )
        requests.append(ua.MonitoredItemCreateRequest(
            ItemToMonitor=rv, MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=mp))
    results = await sub.create_monitored_items(requests)
    for (i, _), res in zip(items, results, strict=True):
        if isinstance(res, ua.StatusCode):
            log.warning("monitored item refused", extra={"source": source.name, "tag": source.tags[i],
                                                         "status": res.name})
