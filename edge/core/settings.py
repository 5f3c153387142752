"""Config sections owned by the appliance itself, and the shared building blocks of every section."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, so a misspelt key never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Section):
    """A secret named in config by where it lives, never by its value: an environment variable or a file."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_place(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret names exactly one of 'env' or 'file'")
        return self

    def resolve(self) -> str:
        """The secret's value. Errors name where it was looked for, never what it holds."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise LookupError(f"secret environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            return self.file.read_text().strip()
        except OSError as exc:
            raise LookupError(f"secret file {self.file} cannot be read: {exc.strerror}") from None

    def describe(self) -> str:
        return f"<secret env:{self.env}>" if self.env else f"<secret file:{self.file}>"


class BoxSettings(Section):
    id: str = "edge-box"
    site: str = "site"
    description: str = ""


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "text"] = "auto"


class TlsSettings(Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


class BrokerSettings(Section):
    """The MQTT broker the appliance publishes insights to (and, by default, subscribes through)."""

    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = ""
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password: SecretRef | None = None
    tls: TlsSettings | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    session_expiry_s: int = Field(3600, ge=0)
    topic_prefix: str = ""


class SpoolSettings(Section):
    dir: Path = Path("/var/lib/factory-edge/spool")
    max_bytes: int = Field(1 << 30, ge=1 << 20)
    when_full: Literal["refuse_new", "drop_oldest"] = "refuse_new"
    drain_rows_per_s: int = Field(200_000, ge=1)
    segment_bytes: int = Field(16 << 20, ge=1 << 16)


class PipelineSettings(Section):
    batch_rows: int = Field(10_000, ge=1)
    batch_ms: int = Field(50, ge=1)
    queue_batches: int = Field(64, ge=1)
    shutdown_timeout_s: float = Field(8.0, gt=0)


class MetricsSettings(Section):
    listen: str = "127.0.0.1:9464"
    enabled: bool = True
    state_file: Path = Path("/var/lib/factory-edge/stats.json")  # JSON snapshot that `edge stats` reads
    state_interval_s: float = Field(default=5.0, gt=0)
