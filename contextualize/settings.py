"""Contextualize config sections: the asset model, the tag map and MES intake."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from contextualize.units import DEFAULT_MEASURES
from edge.core.settings import Section


class TagMapping(Section):
    """One source tag: the equipment it measures, what it measures, and how it is published."""

    asset: str = Field(description="equipment path below enterprise and site: area/line/cell/equipment")
    measure: str = Field(description="a measure named in [assets.measures] (vibration, temperature, ...)")
    unit: str | None = Field(default=None, description="unit the source publishes in (pint syntax); "
                             "default: the measure's canonical unit")
    min: float | None = Field(default=None, description="lowest valid value, in the tag's own unit")
    max: float | None = Field(default=None, description="highest valid value, in the tag's own unit")
    rate_hz: float | None = Field(default=None, gt=0, description="expected sample rate")
    description: str = ""


class EquipmentSettings(Section):
    description: str = ""
    kind: str = Field(default="", description="free text: press, pump, conveyor, ...")


class AssetSettings(Section):
    """The ISA-95 asset model and the tag map (see contextualize/README.md)."""

    enterprise: str = "enterprise"
    site: str = "site"
    measures: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_MEASURES),
        description="canonical unit of each measure; values are converted to it on the way in",
    )
    equipment: dict[str, EquipmentSettings] = Field(
        default_factory=dict, description="every equipment, keyed area/line/cell/equipment"
    )
    tags: dict[str, TagMapping] = Field(default_factory=dict, description="source tag name -> mapping")
    check_range: bool = Field(default=True, description="contextualize flags values outside [min, max] "
                              "as OUT_OF_RANGE (unmapped tags: see quality.unmapped)")

    @field_validator("measures", mode="before")
    @classmethod
    def _over_defaults(cls, value: object) -> object:
        """A layer adds or changes measures; the built-in ones stay unless overridden."""
        return {**DEFAULT_MEASURES, **value} if isinstance(value, dict) else value


class MesFieldMap(Section):
    """Where each field of an MES event sits in payloads of other shapes: dotted paths (``header.time``)."""

    type: str = "type"
    ts: str = "ts"
    ts_format: Literal["iso8601", "epoch_s", "epoch_ms", "epoch_us"] = "iso8601"
    scope: str = "scope"
    scope_prefix: str = Field(default="", description="ISA-95 path put in front of the scope the MES sends")
    event_id: str = "event_id"
    work_order: str = "work_order"
    product: str = "product"
    batch: str = "batch"
    lot: str = Field(default="lot", description="read when batch is absent")
    shift: str = "shift"
    type_values: dict[str, str] = Field(default={}, description="the MES's event type names to ours")


class MesSettings(Section):
    topic: str = "mes/#"
    enabled: bool = True
    qos: Literal[0, 1] = 1
    mapping: MesFieldMap = MesFieldMap()
    history_days: float = Field(default=30.0, gt=0, description="closed intervals reloaded at start")
    relabel: bool = Field(default=True, description="update stored samples and insights when context changes")
    relabel_settle_s: float = Field(default=5.0, ge=0, description="delay of a second relabel pass")
