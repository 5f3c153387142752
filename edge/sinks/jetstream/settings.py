"""The ``[jetstream]`` (box publisher, heartbeat) and ``[site_historian]`` (central consumer) sections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.core.settings import Section

Kind = Literal["samples", "features", "insights", "events", "dead_letters"]
DEFAULT_KINDS: tuple[Kind, ...] = ("samples", "insights", "events")


class JetStreamSettings(Section):
    """A box publishing its batches to the site's JetStream cluster (off by default)."""

    enabled: bool = False
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    site: str | None = Field(None, description="subject level for the site; default box.site")
    line: str = Field("line", description="subject level between site and box (a production line)")
    kinds: list[Kind] = Field(default_factory=lambda: list(DEFAULT_KINDS),
                              description="batch kinds published; the others are acknowledged untouched")
    compression: Literal["none", "lz4", "zstd"] = "lz4"
    in_flight: int = Field(32, ge=1, le=1024, description="publishes awaiting their JetStream ack at once")
    publish_timeout_s: float = Field(5.0, gt=0)
    retry_interval_s: float = Field(1.0, gt=0, description="while the cluster is away: probe this often")
    spool_dir: Path | None = Field(None, description="default <spool.dir>/jetstream")
    spool_max_bytes: int = Field(1 << 30, ge=1 << 20)
    ensure_streams: bool = Field(True, description="create the site streams when missing")
    replicas: int = Field(3, ge=1, le=5, description="stream replicas, when this box creates the streams")
    max_age_s: float = Field(7 * 86400.0, gt=0, description="data stream retention")
    max_bytes: int = Field(-1, description="data stream size limit (-1: none)")
    duplicate_window_s: float = Field(120.0, gt=0, description="JetStream de-duplication window")
    heartbeat_interval_s: float = Field(5.0, gt=0)
    heartbeat_config_body: bool = Field(True, description="carry the rendered config (for edge fleet diff)")


class SiteHistorianSettings(Section):
    """The central historian role: a durable pull consumer on the site's data stream (off by default)."""

    enabled: bool = False
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    site: str | None = Field(None, description="default box.site")
    durable: str = Field("site-historian", description="same name in every process: they share the work")
    filter_subject: str | None = Field(None, description="default fe.<site>.data.>")
    fetch_batch: int = Field(16, ge=1, le=1024)
    ack_wait_s: float = Field(30.0, gt=0, description="an unacked message goes to another process after this")
    max_ack_pending: int = Field(1024, ge=1)
    retry_interval_s: float = Field(1.0, gt=0)
    write_timeout_s: float = Field(10.0, gt=0)
    ensure_streams: bool = True
    replicas: int = Field(3, ge=1, le=5)
    max_age_s: float = Field(7 * 86400.0, gt=0)
    max_bytes: int = -1
    duplicate_window_s: float = Field(120.0, gt=0)
