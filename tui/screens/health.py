"""Health: rates and lag per stage, spool depth, connection states, dead letters and their reasons."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from tui.context import ScreenContext
from tui.link_state import LinkState
from tui.models import Health
from tui.screens.base import EdgeScreen
from tui.widgets.filter_box import FilterBox, matches
from tui.widgets.fmt import age, clock, count, num
from tui.widgets.status import StatusBar


async def fetch_metrics(listen: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """``GET /stats`` from the appliance's metrics endpoint (``edge.core.metrics.MetricsServer``), or None."""
    host, _, port = listen.replace("http://", "").rstrip("/").rpartition(":")

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port))
        try:
            writer.write(b"GET /stats HTTP/1.0\r\nHost: edge\r\n\r\n")
            await writer.drain()
            return await reader.read(4 * 1024 * 1024)
        finally:
            writer.close()

    try:
        raw = await asyncio.wait_for(get(), timeout)
        head, _, body = raw.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/") or b" 200 " not in head.split(b"\r\n", 1)[0]:
            return None
        doc = json.loads(body)
        return doc if isinstance(doc, dict) else None
    except (OSError, TimeoutError, ValueError):
        return None


def read_metrics(path: Path | None) -> dict[str, Any] | None:
    """The metrics snapshot another process wrote (``edge.core.metrics.MetricsServer``), or None."""
    if path is None:
        return None
    try:
        from edge.core.metrics import read_state_file

        return read_state_file(path)
    except (OSError, ValueError, ImportError):
        return None


def metrics_text(snapshot: dict[str, Any] | None) -> Text:
    text = Text("Metrics snapshot\n", style="bold")
    if snapshot is None:
        text.append("none (no --metrics endpoint or --stats file answers)", style="dim")
        return text
    counters = snapshot.get("counters") or {}
    for stage, values in sorted(counters.items()):
        if not isinstance(values, dict):
            continue
        parts: list[str] = []
        for counter, value in sorted(values.items()):
            if isinstance(value, dict):
                total = sum(v for v in value.values() if isinstance(v, int | float))
                reasons = ", ".join(f"{k} {num(v, 0)}" for k, v in sorted(value.items()))
                parts.append(f"{counter} {num(total, 0)} ({reasons})")
            elif isinstance(value, int | float):
                parts.append(f"{counter} {num(value, 0)}")
        text.append(f"{stage:<18}", style="bold")
        text.append(" · ".join(parts) + "\n")
    for name, value in sorted((snapshot.get("gauges") or {}).items()):
        text.append(f"{name:<18} {num(value) if isinstance(value, int | float) else value}\n")
    return text


class HealthScreen(EdgeScreen):
    LABEL = "Health"
    HELP = ("is the appliance keeping up: rows/s and lag per stage, connections, spool depth, metrics, "
            "dead letters and why they were rejected")
    BINDINGS = [  # noqa: RUF012
        Binding("slash", "open_filter", "Filter", tooltip="filter connections and dead letters by words"),
    ]

    def __init__(self, ctx: ScreenContext) -> None:
        super().__init__(ctx, id="health")
        self.data: Health | None = None
        self.broker: str | None = None  # from the app's link state; None: no broker configured

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBox("connections and dead letters", id="health-filter")
        with VerticalScroll(id="health-body"):
            with Horizontal(id="health-top"):
                yield DataTable(id="stages", cursor_type="none", show_cursor=False)
                yield DataTable(id="connections", cursor_type="none", show_cursor=False)
            yield Static(id="spool")
            yield Static(id="metrics")
            yield Static("Dead letters (last 24 h)", classes="section")
            yield Static(id="reasons")
            yield DataTable(id="dead-letters", cursor_type="row", zebra_stripes=True)
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.app, "link", self._link_changed)
        self.sub_title = "Health"
        self.query_one("#stages", DataTable).add_columns("stage", "rows/s", "lag")
        self.query_one("#connections", DataTable).add_columns("connection", "state", "since", "last message")
        letters = self.query_one("#dead-letters", DataTable)
        letters.add_columns("time UTC", "source", "reason", "tag", "detail")

    def _link_changed(self, link: LinkState) -> None:
        self.broker = link.broker

    def action_open_filter(self) -> None:
        self.query_one(FilterBox).open()

    @on(FilterBox.Applied)
    def _filtered(self) -> None:
        self.poll()

    async def load(self) -> None:
        now = self.ctx.now()
        h = await self.ctx.source.health(now)
        self.data = h
        stages = self.query_one("#stages", DataTable)
        stages.clear()
        for s in h.stages:
            lag = Text(f"{num(s.lag_s, 1)}s" if s.lag_s is not None else "-")
            if s.lag_s is not None and s.lag_s > 60:
                lag.stylize("dark_orange3")
            stages.add_row(s.stage, num(s.per_s, 1), lag)
        conns = self.query_one("#connections", DataTable)
        conns.clear()
        conns.add_row("historian (tui)", Text("up", style="green3"), "now", "")
        if self.broker is not None:
            up = self.broker == "up"
            state = Text(self.broker, style="green3" if up else "bold red3")
            conns.add_row("mqtt broker (tui)", state, "", "")
        q = self.query_one(FilterBox).applied
        for c in h.connections:
            if not matches(q, c.name, c.state, c.detail):
                continue
            good = c.state.lower() in ("up", "connected", "ok", "online")
            conns.add_row(c.name, Text(c.state, style="green3" if good else "bold red3"),
                          f"{age(now, c.since)} ago", c.detail[:50])
        spool = Text("spool depth  ", style="bold")
        spool.append(count(h.spool_depth))
        self.query_one("#spool", Static).update(spool)
        snapshot = None
        if self.ctx.metrics_url is not None:
            snapshot = await fetch_metrics(self.ctx.metrics_url)
        if snapshot is None:
            snapshot = read_metrics(self.ctx.stats_file)
        self.query_one("#metrics", Static).update(metrics_text(snapshot))
        reasons = Text()
        for reason, n in h.dead_letter_reasons:
            reasons.append(f"{reason} ", style="bold")
            reasons.append(f"{count(n)}   ")
        self.query_one("#reasons", Static).update(reasons or Text("none", style="dim"))
        letters = self.query_one("#dead-letters", DataTable)
        letters.clear()
        for d in h.dead_letters:
            if not matches(q, d.source, d.reason, d.tag, d.detail):
                continue
            letters.add_row(clock(d.ts), d.source, d.reason, d.tag or "", (d.detail or "")[:60])
