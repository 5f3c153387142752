"""Historian config section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.core.settings import SecretRef, Section


class HistorianSettings(Section):
    dsn: str = "postgresql://edge_writer@127.0.0.1:5432/factory_edge"
    password: SecretRef | None = None  # edge_writer's password (set on the role by `edge historian init`)
    reader_password: SecretRef | None = None  # edge_reader's password, set by `edge historian init`
    write_method: Literal["auto", "copy", "insert"] = "auto"
    flavor: Literal["auto", "timescaledb", "postgres"] = "auto"
    chunk_interval: str = "1 day"
    compress_after: str = "7 days"
    retention: str = "90 days"
    partitions_ahead: int = Field(7, ge=1, description="plain PostgreSQL: daily partitions created ahead")
    write_timeout_s: float = Field(10.0, gt=0)
    ledger_keep: str = Field("7 days", description="how long the ingest ledger recognises a replayed batch")
    outbox_keep: str = Field("7 days", description="how long published MES outbox rows are kept")
    maintenance_interval_s: float = Field(
        3600.0, gt=0, description="seconds between the appliance's maintenance runs (HistorianMaintenance)")
