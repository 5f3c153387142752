"""Layered TOML config: ``base.toml``, ``sites/<site>.toml``, ``assets/<site>.toml``, ``boxes/<box>.toml``.

Later layers override earlier ones key by key (tables merge, everything else, lists included, replaces).
The box file names its site (``box.site``); ``assets/<site>.toml`` is optional and may hold only the
``[assets]`` table (the asset model and tag map of that site). The merged result is validated into
:class:`AppConfig`, then checked by the semantic checks (the asset model, ...). Every error names the file
that set the key, the key path (``sources.opcua[0].endpoint``) and what was expected. Secrets are
references (:class:`edge.core.settings.SecretRef`): never resolved here, never rendered, never echoed in
errors.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from contextualize.settings import AssetSettings, MesSettings
from edge.core.config_layers import (
    NAME,
    ConfigError,
    Loc,
    describe_error,
    format_loc,
    merge_layer,
    missing_secrets,
    read_toml,
    redacted,
    secret_refs,
    where_set,
)
from edge.core.settings import (
    BoxSettings,
    BrokerSettings,
    LogSettings,
    MetricsSettings,
    PipelineSettings,
    Section,
    SpoolSettings,
)
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.jetstream.settings import JetStreamSettings, SiteHistorianSettings
from inference.settings import InferenceSettings
from ingest.settings import QualitySettings, SourcesSettings

# Re-exported: the commands and tests meet config errors and secrets through this module.
__all__ = ["CHECKS", "WARNING_CHECKS", "AppConfig", "ConfigError", "LoadedConfig", "default_config_dir",
           "format_loc", "json_schema", "known_boxes", "known_sites", "layer_paths", "load_config",
           "load_config_dict", "load_config_file", "missing_secrets", "redacted", "register_check",
           "schema_text", "secret_refs"]

S = TypeVar("S", bound=BaseModel)


def _defaults(cls: type[S]) -> Any:
    """A section default built from its own defaults (mypy reads ``Field(30, ge=1)`` as required)."""
    return Field(default_factory=lambda: cls.model_validate({}))


class AppConfig(Section):
    """The whole appliance config: one section per area (each defined beside its code)."""

    box: BoxSettings = _defaults(BoxSettings)
    log: LogSettings = _defaults(LogSettings)
    historian: HistorianSettings = _defaults(HistorianSettings)
    broker: BrokerSettings = _defaults(BrokerSettings)
    sources: SourcesSettings = _defaults(SourcesSettings)
    quality: QualitySettings = _defaults(QualitySettings)
    assets: AssetSettings = _defaults(AssetSettings)
    mes: MesSettings = _defaults(MesSettings)
    inference: InferenceSettings = _defaults(InferenceSettings)
    pipeline: PipelineSettings = _defaults(PipelineSettings)
    spool: SpoolSettings = _defaults(SpoolSettings)
    metrics: MetricsSettings = _defaults(MetricsSettings)
    jetstream: JetStreamSettings = _defaults(JetStreamSettings)  # a box publishing to the site cluster
    site_historian: SiteHistorianSettings = _defaults(SiteHistorianSettings)  # the central consumer role


# Semantic checks run after the typed validation: each returns (key path, problem) pairs.
Check = Callable[[AppConfig], Iterable[tuple[Loc, str]]]
CHECKS: list[Check] = []


def register_check(check: Check) -> Check:
    """Add a semantic check (usable as a decorator); areas register theirs at import of their module."""
    if check not in CHECKS:
        CHECKS.append(check)
    return check


def _asset_check(config: AppConfig) -> Iterable[tuple[Loc, str]]:
    from contextualize.assets import config_issues

    return config_issues(config.assets)


register_check(_asset_check)

# Warning checks: things that work but are probably not meant (printed by ``edge config validate``).
WARNING_CHECKS: list[Check] = []


def _unmapped_source_tags(config: AppConfig) -> Iterable[tuple[Loc, str]]:
    mapped = config.assets.tags
    policy = config.quality.unmapped
    for i, src in enumerate(config.sources.opcua):
        for j, node in enumerate(src.nodes):
            if node.tag not in mapped:
                yield (("sources", "opcua", i, "nodes", j, "tag"),
                       f"tag {node.tag!r} has no mapping in [assets.tags] (quality.unmapped = {policy!r})")


WARNING_CHECKS.append(_unmapped_source_tags)


@dataclass
class LoadedConfig:
    config: AppConfig
    layers: list[Path]
    merged: dict[str, Any]
    origin: dict[tuple[str, ...], Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def body(self) -> str:
        return json.dumps(redacted(self.config), indent=2, sort_keys=True, default=str)

    def render(self) -> str:
        """The merged config as JSON, secrets shown by reference only, then the sha256 of that text."""
        body = self.body()
        return f"{body}\nsha256: {hashlib.sha256(body.encode()).hexdigest()}"

    def sha256(self) -> str:
        return hashlib.sha256(self.body().encode()).hexdigest()


def default_config_dir() -> Path:
    """``./firmware-config`` if it exists, else ``$FE_CONFIG_DIR``, else the one beside this checkout."""
    local = Path("firmware-config")
    if local.is_dir():
        return local
    env = os.environ.get("FE_CONFIG_DIR")
    if env:
        return Path(env)
    beside_checkout = Path(__file__).resolve().parents[2] / "firmware-config"  # editable install
    return beside_checkout if beside_checkout.is_dir() else local


def known_boxes(config_dir: Path) -> list[str]:
    return sorted(p.stem for p in (config_dir / "boxes").glob("*.toml"))


def known_sites(config_dir: Path) -> list[str]:
    return sorted(p.stem for p in (config_dir / "sites").glob("*.toml"))


def layer_paths(config_dir: Path, box: str | None) -> list[Path]:
    """The files merged for ``box``, in order (just ``base.toml`` when ``box`` is None)."""
    if not config_dir.is_dir():
        raise ConfigError([f"{config_dir}: config folder not found (use --dir or FE_CONFIG_DIR)"])
    base = config_dir / "base.toml"
    if not base.is_file():
        raise ConfigError([f"{base}: not found (the config folder must hold base.toml)"])
    layers = [base]
    if box is None:
        return layers
    if not NAME.match(box):
        raise ConfigError([f"{box!r}: not a box name (letters, digits, '-', '_', '.'; no path)"])
    box_file = config_dir / "boxes" / f"{box}.toml"
    if not box_file.is_file():
        known = known_boxes(config_dir)
        raise ConfigError([f"{box_file}: no such box (known boxes: {', '.join(known) or 'none'})"])
    box_doc = read_toml(box_file)
    box_table = box_doc.get("box", {})
    site = box_table.get("site") if isinstance(box_table, dict) else None
    if site is None:
        base_box = read_toml(base).get("box", {})
        site = base_box.get("site") if isinstance(base_box, dict) else None
    if site is None:
        sites = ", ".join(known_sites(config_dir)) or "none"
        raise ConfigError([f"{box_file}: box.site: required key is missing: name the site this box "
                           f"belongs to (known sites: {sites})"])
    if not isinstance(site, str) or not NAME.match(site):
        raise ConfigError([f"{box_file}: box.site: expected the name of a file in sites/ (got {site!r})"])
    site_file = config_dir / "sites" / f"{site}.toml"
    if not site_file.is_file():
        sites = ", ".join(known_sites(config_dir)) or "none"
        raise ConfigError([f"{box_file}: box.site: names site {site!r} but {site_file} does not exist "
                           f"(known sites: {sites})"])
    layers.append(site_file)
    assets_file = config_dir / "assets" / f"{site}.toml"
    if assets_file.is_file():
        layers.append(assets_file)
    layers.append(box_file)
    return layers


def load_config(config_dir: Path | None = None, box: str | None = None) -> LoadedConfig:
    """Read, merge and validate the layers for ``box`` (``base.toml`` only when ``box`` is None)."""
    config_dir = config_dir if config_dir is not None else default_config_dir()
    layers = layer_paths(config_dir, box)
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], Path] = {}
    for path in layers:
        doc = read_toml(path)
        if path.parent.name == "assets":
            extra = sorted(k for k in doc if k != "assets")
            if extra:
                raise ConfigError([f"{path}: {k}: only the [assets] table belongs in an asset file"
                                   for k in extra])
        merge_layer(merged, doc, path, (), origin)
    if box is not None and isinstance(merged.get("box"), dict) and "id" not in merged["box"]:
        merged["box"]["id"] = box  # a box is called by its file name unless it says otherwise
        origin[("box", "id")] = layers[-1]
    config = _validate(merged, origin, layers)
    warnings = [f"{where_set(loc, origin, layers)}: {format_loc(loc)}: {msg}"
                for check in WARNING_CHECKS for loc, msg in check(config)]
    return LoadedConfig(config=config, layers=layers, merged=merged, origin=origin, warnings=warnings)


def load_config_file(path: Path) -> AppConfig:
    """Validate one standalone TOML file (tests, demo, ad-hoc runs)."""
    origin: dict[tuple[str, ...], Path] = {}
    merged: dict[str, Any] = {}
    merge_layer(merged, read_toml(path), path, (), origin)
    return _validate(merged, origin, [path])


def load_config_dict(data: dict[str, Any], name: str = "<config>") -> AppConfig:
    """Validate a config given as a dict (as a TOML file would hold it); errors name ``name``."""
    origin: dict[tuple[str, ...], Path] = {}
    merged: dict[str, Any] = {}
    merge_layer(merged, data, Path(name), (), origin)
    return _validate(merged, origin, [Path(name)])


def _validate(merged: dict[str, Any], origin: dict[tuple[str, ...], Path], layers: list[Path]) -> AppConfig:
    try:
        config = AppConfig.model_validate(merged)
    except ValidationError as exc:
        problems = [describe_error(err, origin, layers, AppConfig) for err in exc.errors()]
        raise ConfigError(list(dict.fromkeys(problems))) from None
    problems = []
    for check in CHECKS:
        for loc, msg in check(config):
            problems.append(f"{where_set(loc, origin, layers)}: {format_loc(loc)}: {msg}")
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return config


SCHEMA_ID = "https://factory-edge.invalid/schema/config.schema.json"


def json_schema() -> dict[str, Any]:
    """JSON schema of a merged config (each layer file is a partial instance of it)."""
    schema = AppConfig.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "Factory Edge config", **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    """The committed form of :func:`json_schema` (firmware-config/schema/config.schema.json)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
