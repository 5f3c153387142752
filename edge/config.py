"""Layered TOML config: ``base.toml``, then ``sites/<site>.toml``, then ``boxes/<box>.toml``.

Later layers override earlier ones key by key (tables merge, everything else replaces). The merged result
is validated into :class:`AppConfig`; an error names the file that set the key, the key path and what was
expected. Secrets are references (:class:`edge.settings.SecretRef`) and never rendered.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contextualize.settings import AssetSettings, MesSettings
from edge.historian.settings import HistorianSettings
from edge.settings import (
    BoxSettings,
    BrokerSettings,
    LogSettings,
    MetricsSettings,
    PipelineSettings,
    Section,
    SecretRef,
    SpoolSettings,
)
from inference.settings import InferenceSettings
from ingest.settings import QualitySettings, SourcesSettings


class AppConfig(Section):
    box: BoxSettings = BoxSettings()
    log: LogSettings = LogSettings()
    historian: HistorianSettings = HistorianSettings()
    broker: BrokerSettings = BrokerSettings()
    sources: SourcesSettings = SourcesSettings()
    quality: QualitySettings = QualitySettings()
    assets: AssetSettings = AssetSettings()
    mes: MesSettings = MesSettings()
    inference: InferenceSettings = InferenceSettings()
    pipeline: PipelineSettings = PipelineSettings()
    spool: SpoolSettings = SpoolSettings()
    metrics: MetricsSettings = MetricsSettings()


class ConfigError(Exception):
    """A config that cannot be used. ``problems`` holds one line per problem: file, key path, expectation."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class LoadedConfig:
    config: AppConfig
    layers: list[Path]
    merged: dict[str, Any]
    origin: dict[tuple[str, ...], Path] = field(default_factory=dict)

    def render(self) -> str:
        """The merged config as JSON, secrets shown by reference only, with the sha256 of that text."""
        body = json.dumps(redacted(self.config), indent=2, sort_keys=True, default=str)
        digest = hashlib.sha256(body.encode()).hexdigest()
        return f"{body}\nsha256: {digest}"

    def sha256(self) -> str:
        body = json.dumps(redacted(self.config), indent=2, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()


def default_config_dir() -> Path:
    """``./firmware-config`` if it exists, else ``$FE_CONFIG_DIR``, else ``./firmware-config``."""
    local = Path("firmware-config")
    if local.is_dir():
        return local
    env = os.environ.get("FE_CONFIG_DIR")
    return Path(env) if env else local


def layer_paths(config_dir: Path, box: str | None) -> list[Path]:
    base = config_dir / "base.toml"
    if not base.is_file():
        raise ConfigError([f"{base}: not found (the config folder must hold base.toml)"])
    layers = [base]
    if box is None:
        return layers
    box_file = config_dir / "boxes" / f"{box}.toml"
    if not box_file.is_file():
        known = sorted(p.stem for p in (config_dir / "boxes").glob("*.toml"))
        raise ConfigError([f"{box_file}: no such box (known boxes: {', '.join(known) or 'none'})"])
    box_doc = _read_toml(box_file)
    site = box_doc.get("box", {}).get("site") or _read_toml(base).get("box", {}).get("site")
    if site:
        site_file = config_dir / "sites" / f"{site}.toml"
        if not site_file.is_file():
            raise ConfigError([f"{box_file}: box.site names site {site!r} but {site_file} does not exist"])
        layers.append(site_file)
    layers.append(box_file)
    return layers


def load_config(config_dir: Path | None = None, box: str | None = None) -> LoadedConfig:
    """Read, merge and validate the layers for ``box`` (base only when ``box`` is None)."""
    config_dir = config_dir or default_config_dir()
    layers = layer_paths(config_dir, box)
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], Path] = {}
    for path in layers:
        _merge(merged, _read_toml(path), path, (), origin)
    try:
        config = AppConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError([_describe(err, origin, layers) for err in exc.errors()]) from None
    return LoadedConfig(config=config, layers=layers, merged=merged, origin=origin)


def load_config_file(path: Path) -> AppConfig:
    """Validate one standalone TOML file (tests, demo, ad-hoc runs)."""
    origin: dict[tuple[str, ...], Path] = {}
    merged: dict[str, Any] = {}
    _merge(merged, _read_toml(path), path, (), origin)
    try:
        return AppConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError([_describe(err, origin, [path]) for err in exc.errors()]) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None


def _merge(
    into: dict[str, Any],
    layer: dict[str, Any],
    path: Path,
    prefix: tuple[str, ...],
    origin: dict[tuple[str, ...], Path],
) -> None:
    for key, value in layer.items():
        key_path = (*prefix, key)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, path, key_path, origin)
        else:
            into[key] = value
            for sub in _leaf_paths(value, key_path):
                origin[sub] = path


def _leaf_paths(value: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaf_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaf_paths(v, (*prefix, str(i)))


def _describe(err: Any, origin: dict[tuple[str, ...], Path], layers: list[Path]) -> str:
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc) or "(top level)"
    where: Path | None = None
    for n in range(len(loc), 0, -1):
        where = origin.get(loc[:n])
        if where is not None:
            break
    where = where or layers[-1]
    kind = err["type"]
    if kind == "extra_forbidden":
        expected = "no such key (misspelt?)"
    elif kind == "missing":
        expected = "required key is missing"
    else:
        expected = err["msg"]
        if "input" in err and not isinstance(err["input"], dict | list) and "secret" not in key.lower():
            expected += f" (got {err['input']!r})"
    return f"{where}: {key}: {expected}"


def redacted(model: Section) -> Any:
    """A JSON-able view of a config in which every secret is replaced by its reference."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretRef):
            return value.describe()
        if isinstance(value, Section):
            return {name: walk(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return walk(model)


def json_schema() -> dict[str, Any]:
    return AppConfig.model_json_schema()
