"""The fleet as the TUI reads it: the last heartbeat of every box from the site's NATS JetStream cluster.

The reading and the silent/drift rules are ``edge.sinks.jetstream`` (``FleetWatch``, the same ones
``edge fleet status`` uses); ``edge tui`` builds the watch with the desired state rendered from the config
folder. Each read is one short NATS session bounded by ``timeout_s``; any failure is
:class:`~tui.data_source.FleetUnavailable`, which the fleet screen shows itself (the historian link is fine).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from edge.sinks.jetstream.fleet_read import FleetWatch
from edge.sinks.jetstream.fleet_table import BoxRow
from tui.data_source import FleetUnavailable


class FleetSource:
    def __init__(self, watch: FleetWatch, *, timeout_s: float = 3.0) -> None:
        self.watch = watch
        self.timeout_s = timeout_s

    @property
    def label(self) -> str:
        return f"site {self.watch.site} on {','.join(self.watch.servers)}"

    async def boxes(self, now: datetime) -> list[BoxRow]:
        try:
            # one attempt: the screen polls again anyway, and the UI must not wait on an election
            return await asyncio.wait_for(
                self.watch.boxes(now.timestamp(), timeout_s=self.timeout_s, attempts=1), 2 * self.timeout_s)
        except Exception as exc:
            raise FleetUnavailable(f"NATS {','.join(self.watch.servers)}: {type(exc).__name__}: {exc}"
                                   .rstrip(": ")) from exc
