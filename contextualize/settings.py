"""Contextualize config sections: the asset model, the tag map and MES intake."""

from __future__ import annotations

from pydantic import Field

from edge.settings import Section


class TagMapping(Section):
    tag: str
    asset: str  # ISA-95 path: enterprise/site/area/line/cell/equipment
    measure: str
    unit: str
    valid_min: float | None = None
    valid_max: float | None = None
    rate_hz: float | None = Field(None, gt=0)


class AssetSettings(Section):
    enterprise: str = "enterprise"
    equipment: list[str] = []  # full ISA-95 paths of every equipment
    tags: list[TagMapping] = []


class MesSettings(Section):
    topic: str = "mes/#"
    context_level: str = Field("line", description="ISA-95 level MES intervals are keyed by: line or equipment")
