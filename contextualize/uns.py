"""The unified namespace: one path per equipment, one topic per equipment and measure.

An equipment's path is its ISA-95 position, ``enterprise/site/area/line/cell/equipment``
(``acme/plant1/packaging/line1/cell1/press1``). The same string is the historian's ``asset`` column, the MQTT
topic under which the appliance publishes about that equipment, and the node the terminal UI shows:

* ``<asset>/<measure>``               values of one measure (``.../press1/vibration``)
* ``<asset>/_insights/<model>``       insights of one model about the equipment
* ``<asset>/_events``                 events about the equipment

Segments are letters, digits, ``-``, ``_`` and ``.``, starting with a letter or digit, so that a segment is
never an MQTT wildcard, never a ``$`` system topic, and never collides with the reserved ``_insights`` /
``_events`` leaves. An optional topic prefix (``broker.topic_prefix``) goes in front of every topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from edge.core.datamodel import EVENTS_TOPIC_LEVEL, INSIGHTS_TOPIC_LEVEL

LEVELS: tuple[str, ...] = ("enterprise", "site", "area", "line", "cell", "equipment")
Level = Literal["enterprise", "site", "area", "line", "cell", "equipment"]
DEPTH = len(LEVELS)
INSIGHTS = INSIGHTS_TOPIC_LEVEL
EVENTS = EVENTS_TOPIC_LEVEL
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class UnsError(ValueError):
    """A path or topic that is not a valid unified-namespace name."""


def check_segment(segment: str, what: str = "segment") -> str:
    if not SEGMENT.match(segment):
        raise UnsError(
            f"{what} {segment!r} is not a valid name (letters, digits, '-', '_', '.', starting with a letter "
            "or digit)"
        )
    return segment


@dataclass(frozen=True, order=True)
class AssetPath:
    """An equipment's place in the ISA-95 hierarchy."""

    enterprise: str
    site: str
    area: str
    line: str
    cell: str
    equipment: str

    def __post_init__(self) -> None:
        for level in LEVELS:
            check_segment(getattr(self, level), level)

    @classmethod
    def parse(cls, path: str) -> AssetPath:
        """Split ``enterprise/site/area/line/cell/equipment``; :class:`UnsError` on any other depth."""
        parts = path.strip("/").split("/") if path else []
        if len(parts) != DEPTH:
            raise UnsError(
                f"asset path {path!r} has {len(parts)} level(s); expected {DEPTH}: {'/'.join(LEVELS)}"
            )
        return cls(*parts)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(getattr(self, level) for level in LEVELS)

    def __str__(self) -> str:
        return "/".join(self.parts)

    def ancestor(self, level: Level) -> str:
        """The path down to ``level`` (``line`` gives ``acme/plant1/packaging/line1``)."""
        return "/".join(self.parts[: LEVELS.index(level) + 1])

    def topic(self, measure: str | None = None, prefix: str = "") -> str:
        return measure_topic(str(self), measure, prefix) if measure else with_prefix(prefix, str(self))


def asset_path(enterprise: str, site: str, area: str, line: str, cell: str, equipment: str) -> str:
    """The asset string of an equipment (validated)."""
    return str(AssetPath(enterprise, site, area, line, cell, equipment))


def parse_asset(path: str) -> AssetPath:
    return AssetPath.parse(path)


def ancestor(asset: str, level: Level) -> str:
    """``ancestor("acme/plant1/packaging/line1/cell1/press1", "line") == "acme/plant1/packaging/line1"``."""
    return AssetPath.parse(asset).ancestor(level)


def with_prefix(prefix: str, topic: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{topic}" if prefix else topic


def strip_prefix(prefix: str, topic: str) -> str:
    prefix = prefix.strip("/")
    if not prefix:
        return topic
    if not topic.startswith(prefix + "/"):
        raise UnsError(f"topic {topic!r} is not under prefix {prefix!r}")
    return topic[len(prefix) + 1 :]


def measure_topic(asset: str, measure: str, prefix: str = "") -> str:
    """``<asset>/<measure>``: where values of one measure of one equipment live."""
    return with_prefix(prefix, f"{asset}/{check_segment(measure, 'measure')}")


def insight_topic(asset: str, model: str, prefix: str = "") -> str:
    """``<asset>/_insights/<model>``: where insights of ``model`` about ``asset`` are published."""
    return with_prefix(prefix, f"{asset}/{INSIGHTS}/{check_segment(model, 'model')}")


def events_topic(asset: str, prefix: str = "") -> str:
    return with_prefix(prefix, f"{asset}/{EVENTS}")


def insight_filter(prefix: str = "") -> str:
    """An MQTT subscription filter matching every insight of every equipment."""
    return with_prefix(prefix, "/".join(["+"] * DEPTH + [INSIGHTS, "+"]))


@dataclass(frozen=True)
class Topic:
    """A parsed UNS topic: the equipment, and what the leaf is about."""

    asset: AssetPath
    kind: Literal["asset", "measure", "insights", "events"]
    name: str | None = None  # the measure or the model


def parse_topic(topic: str, prefix: str = "") -> Topic:
    """Inverse of :func:`measure_topic`, :func:`insight_topic`, :func:`events_topic` and a bare asset."""
    parts = strip_prefix(prefix, topic).split("/")
    if len(parts) < DEPTH:
        raise UnsError(f"topic {topic!r} is shorter than an asset path ({'/'.join(LEVELS)})")
    asset = AssetPath(*parts[:DEPTH])
    rest = parts[DEPTH:]
    if not rest:
        return Topic(asset, "asset")
    if len(rest) == 1 and rest[0] == EVENTS:
        return Topic(asset, "events")
    if len(rest) == 2 and rest[0] == INSIGHTS:
        return Topic(asset, "insights", check_segment(rest[1], "model"))
    if len(rest) == 1:
        return Topic(asset, "measure", check_segment(rest[0], "measure"))
    raise UnsError(f"topic {topic!r} is not a UNS topic (asset, asset/measure, asset/_insights/model)")
