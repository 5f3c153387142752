"""The asset model: the ISA-95 equipment hierarchy and the tag map, built from ``[assets]`` and validated.

Usage::

    model = AssetModel.from_settings(app_config.assets)
    t = model.tag("line1.press1.temperature")       # Tag: asset, measure, unit, conversion, range, rate
    model.valid_range("line1.press1.temperature")   # (min, max) in the measure's canonical unit
    model.equipment_paths()                         # every equipment's UNS path, sorted

Every problem found while building is collected and raised together as :class:`AssetModelError`, each with
the key path under ``assets`` that caused it; :func:`edge.app.config.load_config` turns those into config
errors
that name the file as well.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from contextualize import units
from contextualize.settings import AssetSettings, TagMapping
from contextualize.uns import DEPTH, LEVELS, AssetPath, Level, UnsError, check_segment, measure_topic
from edge.core.config_layers import key_path as format_loc

Loc = tuple[str | int, ...]
RELATIVE_LEVELS = LEVELS[2:]  # what an [assets.equipment] key names: area/line/cell/equipment


class AssetModelError(ValueError):
    """Problems in ``[assets]``: ``issues`` holds (key path, what is wrong) pairs."""

    def __init__(self, issues: list[tuple[Loc, str]]) -> None:
        self.issues = issues
        super().__init__("\n".join(f"{format_loc(loc)}: {msg}" for loc, msg in issues))


@lru_cache(maxsize=1024)
def _affine(src: str, dst: str) -> units.Affine:
    return units.affine(src, dst)


@dataclass(frozen=True)
class Equipment:
    path: AssetPath
    description: str = ""
    kind: str = ""

    @property
    def asset(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class Tag:
    """One mapped source tag. Ranges are in the canonical unit of the measure."""

    name: str
    asset: str
    measure: str
    unit: str  # as published by the source
    canonical_unit: str
    conversion: units.Affine
    valid_min: float | None
    valid_max: float | None
    rate_hz: float | None
    description: str = ""
    raw_range: tuple[float | None, float | None] = (None, None)  # as configured, in ``unit``

    @property
    def topic(self) -> str:
        return measure_topic(self.asset, self.measure)

    def to_canonical(self, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.conversion.apply(values)

    def from_canonical(self, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Canonical values in the unit this tag is published in (for simulators and test fixtures)."""
        return self.conversion.apply(values) if self.conversion.identity else _affine(
            self.canonical_unit, self.unit).apply(values)


@dataclass
class AssetModel:
    enterprise: str
    site: str
    measures: dict[str, str]  # measure -> canonical unit
    equipment: dict[str, Equipment]  # full asset path -> equipment
    tags: dict[str, Tag]  # source tag -> mapping
    check_range: bool = True
    _tables: _Tables | None = field(default=None, repr=False, compare=False)

    # -- building ------------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, s: AssetSettings) -> AssetModel:
        issues: list[tuple[Loc, str]] = []

        def bad(loc: Loc, msg: str) -> None:
            issues.append((("assets", *loc), msg))

        for level in ("enterprise", "site"):
            try:
                check_segment(getattr(s, level), level)
            except UnsError as exc:
                bad((level,), str(exc))

        measures: dict[str, str] = {}
        for m, unit in s.measures.items():
            try:
                check_segment(m, "measure")
                units.check_unit(unit)
                measures[m] = unit
            except (UnsError, units.UnitError) as exc:
                bad(("measures", m), str(exc))

        equipment: dict[str, Equipment] = {}
        rel_to_full: dict[str, str] = {}
        for key, eq in s.equipment.items():
            path = _equipment_path(s, key, _reporter(bad, ("equipment", key)))
            if path is None:
                continue
            if str(path) in equipment:
                bad(("equipment", key), f"names the same equipment as {_rel(equipment[str(path)].path)!r}")
                continue
            equipment[str(path)] = Equipment(path, eq.description, eq.kind)
            rel_to_full[key.strip("/")] = str(path)

        tags: dict[str, Tag] = {}
        by_topic: dict[tuple[str, str], str] = {}
        for name, t in s.tags.items():
            tag = _build_tag(s, name, t, measures, rel_to_full, _reporter(bad, ("tags", name)))
            if tag is None:
                continue
            other = by_topic.get((tag.asset, tag.measure))
            if other is not None:
                bad(("tags", name), f"measure {tag.measure!r} of {tag.asset} is already mapped by tag "
                    f"{other!r}: a tag is mapped twice onto one UNS topic; give one of them another measure")
                continue
            by_topic[(tag.asset, tag.measure)] = name
            tags[name] = tag

        if issues:
            raise AssetModelError(issues)
        return cls(s.enterprise, s.site, measures, equipment, tags, s.check_range)

    # -- queries -------------------------------------------------------------------------------------
    def tag(self, name: str) -> Tag | None:
        return self.tags.get(name)

    def valid_range(self, tag: str) -> tuple[float | None, float | None]:
        """(min, max) of ``tag`` in its measure's canonical unit; (None, None) when unmapped or unset."""
        t = self.tags.get(tag)
        return (None, None) if t is None else (t.valid_min, t.valid_max)

    def raw_valid_ranges(self) -> dict[str, tuple[float | None, float | None]]:
        """Every mapped tag's (min, max) in the unit its source publishes (for the ingest quality gate,
        which sees values before conversion); tags without a range map to (None, None)."""
        return {name: t.raw_range for name, t in self.tags.items()}

    def expected_rate(self, tag: str) -> float | None:
        t = self.tags.get(tag)
        return None if t is None else t.rate_hz

    def canonical_unit(self, measure: str) -> str:
        return self.measures[measure]

    def equipment_paths(self) -> list[str]:
        return sorted(self.equipment)

    def tags_of(self, asset: str) -> list[Tag]:
        return sorted((t for t in self.tags.values() if t.asset == asset), key=lambda t: t.measure)

    def paths_at(self, level: Level) -> list[str]:
        """Distinct paths down to ``level`` (``"line"`` gives every line), sorted."""
        return sorted({e.path.ancestor(level) for e in self.equipment.values()})

    def children(self, path: str = "") -> list[str]:
        """Direct children of a node of the hierarchy ("" is the root): a tree for the terminal UI."""
        depth = len(path.split("/")) if path else 0
        if depth >= DEPTH:
            return []
        prefix = f"{path}/" if path else ""
        return sorted({"/".join(e.path.parts[: depth + 1]) for e in self.equipment.values()
                       if not path or e.asset.startswith(prefix)})

    # -- vectorized lookup tables (used by contextualize.enrich) -------------------------------------
    @property
    def tables(self) -> _Tables:
        if self._tables is None:
            self._tables = _Tables.build(self)
        return self._tables


@dataclass(frozen=True)
class _Tables:
    """Column-wise view of the tag map; index ``len(tags)`` is the 'unmapped' sentinel row."""

    tag_names: pa.Array  # string, one per mapped tag
    assets: pa.Array  # string dictionary of every asset
    measures: pa.Array  # string dictionary of every measure
    units: pa.Array  # string dictionary of canonical units
    asset_idx: npt.NDArray[np.int32]
    measure_idx: npt.NDArray[np.int32]
    unit_idx: npt.NDArray[np.int32]
    zero: npt.NDArray[np.float64]
    mul: npt.NDArray[np.float64]
    div: npt.NDArray[np.float64]
    vmin: npt.NDArray[np.float64]
    vmax: npt.NDArray[np.float64]
    identity: bool

    @classmethod
    def build(cls, model: AssetModel) -> _Tables:
        tags = list(model.tags.values())
        assets = sorted({t.asset for t in tags})
        measures = sorted({t.measure for t in tags})
        canon = sorted({t.canonical_unit for t in tags})
        a_ix = {a: i for i, a in enumerate(assets)}
        m_ix = {m: i for i, m in enumerate(measures)}
        u_ix = {u: i for i, u in enumerate(canon)}

        def col(values: list[float], sentinel: float) -> npt.NDArray[np.float64]:
            return np.array([*values, sentinel], dtype=np.float64)

        return cls(
            tag_names=pa.array([t.name for t in tags], type=pa.string()),
            assets=pa.array(assets, type=pa.string()),
            measures=pa.array(measures, type=pa.string()),
            units=pa.array(canon, type=pa.string()),
            asset_idx=np.array([*(a_ix[t.asset] for t in tags), -1], dtype=np.int32),
            measure_idx=np.array([*(m_ix[t.measure] for t in tags), -1], dtype=np.int32),
            unit_idx=np.array([*(u_ix[t.canonical_unit] for t in tags), -1], dtype=np.int32),
            zero=col([t.conversion.zero for t in tags], 0.0),
            mul=col([t.conversion.mul for t in tags], 1.0),
            div=col([t.conversion.div for t in tags], 1.0),
            vmin=col([-math.inf if t.valid_min is None else t.valid_min for t in tags], -math.inf),
            vmax=col([math.inf if t.valid_max is None else t.valid_max for t in tags], math.inf),
            identity=all(t.conversion.identity for t in tags),
        )


def _rel(path: AssetPath) -> str:
    return "/".join(path.parts[2:])


def _equipment_path(s: AssetSettings, key: str, bad: _Report) -> AssetPath | None:
    parts = key.strip("/").split("/") if key.strip("/") else []
    if len(parts) != len(RELATIVE_LEVELS):
        hint = ("a level is missing: each equipment sits in a cell, each cell in a line, each line in an area"
                if len(parts) < len(RELATIVE_LEVELS) else "too many levels")
        bad(f"equipment path {key!r} has {len(parts)} level(s); expected {len(RELATIVE_LEVELS)}: "
            f"{'/'.join(RELATIVE_LEVELS)} below {s.enterprise}/{s.site} ({hint})")
        return None
    try:
        for level, part in zip(RELATIVE_LEVELS, parts, strict=True):
            check_segment(part, level)
    except UnsError as exc:
        bad(str(exc))
        return None
    try:
        return AssetPath(s.enterprise, s.site, *parts)
    except UnsError:
        return None  # a bad enterprise or site name: reported once, under its own key


def _build_tag(
    s: AssetSettings,
    name: str,
    t: TagMapping,
    measures: dict[str, str],
    rel_to_full: dict[str, str],
    bad: _Report,
) -> Tag | None:
    ok = True
    if not name.strip():
        bad("a tag name must not be empty")
        ok = False
    key = t.asset.strip("/")
    asset = rel_to_full.get(key)
    if asset is None:
        full_prefix = f"{s.enterprise}/{s.site}/"
        if key.startswith(full_prefix) and key[len(full_prefix):] in rel_to_full:
            asset = rel_to_full[key[len(full_prefix):]]
        else:
            close = difflib.get_close_matches(key, list(rel_to_full), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else " (declare it under [assets.equipment])"
            bad(f"equipment {t.asset!r} is not declared in assets.equipment{hint}", ("asset",))
            ok = False
    canonical = measures.get(t.measure)
    if canonical is None:
        close = difflib.get_close_matches(t.measure, list(measures), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        bad(f"unknown measure {t.measure!r}; {hint}known: {', '.join(sorted(measures))} "
            "(add it under [assets.measures] with its canonical unit)", ("measure",))
        return None
    unit = t.unit if t.unit is not None else canonical
    try:
        conv = _affine(unit, canonical)
    except units.UnitError as exc:
        bad(f"{exc} (measure {t.measure!r} is kept in {canonical!r})", ("unit",))
        return None
    if t.min is not None and t.max is not None and t.min > t.max:
        bad(f"valid range is empty: min {t.min:g} > max {t.max:g}", ("min",))
        ok = False
    if not ok or asset is None:
        return None
    lo = None if t.min is None else conv.apply_scalar(t.min)
    hi = None if t.max is None else conv.apply_scalar(t.max)
    if lo is not None and hi is not None and lo > hi:  # a conversion with a negative factor
        lo, hi = hi, lo
    return Tag(name, asset, t.measure, unit, canonical, conv, lo, hi, t.rate_hz, t.description,
               (t.min, t.max))


class _Report(Protocol):
    def __call__(self, msg: str, loc: Loc = ()) -> None: ...


def _reporter(bad: Callable[[Loc, str], None], base: Loc) -> _Report:
    def report(msg: str, loc: Loc = ()) -> None:
        bad((*base, *loc), msg)

    return report


def config_issues(settings: AssetSettings) -> list[tuple[Loc, str]]:
    """Semantic checks of ``[assets]`` for :mod:`edge.app.config`: (key path, problem) pairs, empty when
    fine."""
    try:
        AssetModel.from_settings(settings)
    except AssetModelError as exc:
        return exc.issues
    return []
