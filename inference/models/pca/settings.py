"""Training options of the ``pca`` kind."""

from __future__ import annotations

from pydantic import Field

from inference.models.base import KindSettings


class PcaSettings(KindSettings):
    var: float = Field(
        0.95, ge=0, description="share of the variance the kept components explain; 0 or 1 keeps all"
    )
