"""Training options of the ``iforest`` kind."""

from __future__ import annotations

from pydantic import Field

from inference.models.base import KindSettings


class IforestSettings(KindSettings):
    n_estimators: int = Field(100, ge=1, description="trees in the forest")
