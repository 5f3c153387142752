"""The simulated MES: work orders of a few products per line, shift changes, and now and then a late booking.

Events go out over MQTT in the canonical shape of :mod:`contextualize.mes_events`, QoS 1, on
``<mes topic base>/<line>``. Time can be compressed (``hours_per_s``) so a short demo sees shift changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from contextualize.mes_events import MesEvent, MesEventType
from contextualize.mes_intake import payload_json
from contextualize.settings import AssetSettings, MesSettings
from edge.core.component import Role
from edge.core.mqtt import connect, make_client
from edge.core.settings import BrokerSettings

log = logging.getLogger("edge.simulator.mes")

PRODUCTS = ("SKU-100 bracket", "SKU-210 hinge", "SKU-330 housing")
SHIFTS = ("A", "B", "C")  # 06-14, 14-22, 22-06


class PlantConfig(Protocol):
    """The parts of the appliance's config the MES simulator reads (the app's ``AppConfig`` has them)."""

    @property
    def assets(self) -> AssetSettings: ...
    @property
    def broker(self) -> BrokerSettings: ...
    @property
    def mes(self) -> MesSettings: ...


@dataclass
class MesPlan:
    work_order_s: float = 90.0  # mean work order length (wall seconds)
    late_booking_every: int = 4  # every Nth work order is booked late (after its samples)
    late_by_s: float = 8.0


def line_scopes(config: PlantConfig) -> list[str]:
    """The ISA-95 paths of the lines of the configured plant (enterprise/site/area/line)."""
    a = config.assets
    lines = sorted({"/".join(path.split("/")[:2]) for path in a.equipment})
    return [f"{a.enterprise}/{a.site}/{line}" for line in lines]


def _shift_of(hour: float) -> str:
    return SHIFTS[0] if 6 <= hour < 14 else SHIFTS[1] if 14 <= hour < 22 else SHIFTS[2]


class MesSimulator:
    """A supervisor component (role source) publishing MES events for every line of the plant."""

    role: Role = "source"

    def __init__(self, config: PlantConfig, *, client_id: str = "factory-edge-mes-simulator",
                 name: str = "mes-simulator",
                 plan: MesPlan | None = None, seed: int = 0, scopes: Sequence[str] | None = None,
                 topic_base: str | None = None, wait_for: asyncio.Event | None = None) -> None:
        self.name = name
        self.config = config
        self.client, self._address, self._props = make_client(config.broker, client_id=client_id)
        self.plan = plan or MesPlan()
        self.scopes = list(scopes) if scopes is not None else line_scopes(config)
        base = topic_base or config.mes.topic.rstrip("#").rstrip("/")
        self.topic_base = base
        self._rng = np.random.default_rng(seed)
        self._stop = asyncio.Event()
        self._wait_for = wait_for  # e.g. the MES intake's "subscribed": publish nothing before it listens
        self._wo = 1000
        self.published: list[MesEvent] = []

    def _publish(self, ev: MesEvent) -> None:
        line = ev.scope.rsplit("/", 1)[-1]
        self.client.publish(f"{self.topic_base}/{line}", payload_json(ev), qos=1)
        self.published.append(ev)

    def _event(self, kind: MesEventType, scope: str, ts_us: int, **values: str) -> MesEvent:
        self._wo += 1
        return MesEvent(kind, ts_us, scope, f"sim-{self._wo}-{kind}", **values)  # type: ignore[arg-type]

    async def run(self) -> None:
        connect(self.client, self._address, self._props)
        self.client.loop_start()
        try:
            if self._wait_for is not None:
                await self._wait_for.wait()
            now_us = int(time.time() * 1e6)
            hour = time.gmtime().tm_hour + time.gmtime().tm_min / 60
            for scope in self.scopes:
                self._publish(self._event(MesEventType.SHIFT_CHANGE, scope, now_us - 60_000_000,
                                          shift=_shift_of(hour)))
            next_change = {scope: 0.0 for scope in self.scopes}
            count = 0
            pending_late: list[tuple[float, MesEvent]] = []
            while not self._stop.is_set():
                t = time.monotonic()
                for scope in self.scopes:
                    if t < next_change[scope]:
                        continue
                    count += 1
                    wo = f"WO-{self._wo + 1}"
                    product = PRODUCTS[int(self._rng.integers(len(PRODUCTS)))]
                    ev = self._event(MesEventType.WORK_ORDER_STARTED, scope, int(time.time() * 1e6),
                                     work_order=wo, product=product, batch=f"B-{self._wo % 97:02d}")
                    if count % self.plan.late_booking_every == 0:
                        # booked late: the samples of its first seconds are already stored by then
                        pending_late.append((t + self.plan.late_by_s, ev))
                    else:
                        self._publish(ev)
                    next_change[scope] = t + float(self._rng.uniform(0.6, 1.4) * self.plan.work_order_s)
                for due, ev in list(pending_late):
                    if t >= due:
                        self._publish(ev)
                        pending_late.remove((due, ev))
                try:
                    await asyncio.wait_for(self._stop.wait(), 0.5)
                except TimeoutError:
                    pass
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    async def stop(self) -> None:
        self._stop.set()

