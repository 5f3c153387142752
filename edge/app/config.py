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

import difflib
import hashlib
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from contextualize.settings import AssetSettings, MesSettings
from edge.core.settings import (
    BoxSettings,
    BrokerSettings,
    LogSettings,
    MetricsSettings,
    PipelineSettings,
    SecretRef,
    Section,
    SpoolSettings,
)
from edge.sinks.historian.settings import HistorianSettings
from inference.settings import InferenceSettings
from ingest.settings import QualitySettings, SourcesSettings

Loc = tuple[str | int, ...]
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


class ConfigError(Exception):
    """A config that cannot be used. ``problems`` holds one line per problem: file, key path, expectation."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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
    beside_checkout = Path(__file__).resolve().parents[1] / "firmware-config"  # editable install
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
    if not _NAME.match(box):
        raise ConfigError([f"{box!r}: not a box name (letters, digits, '-', '_', '.'; no path)"])
    box_file = config_dir / "boxes" / f"{box}.toml"
    if not box_file.is_file():
        known = known_boxes(config_dir)
        raise ConfigError([f"{box_file}: no such box (known boxes: {', '.join(known) or 'none'})"])
    box_doc = _read_toml(box_file)
    box_table = box_doc.get("box", {})
    site = box_table.get("site") if isinstance(box_table, dict) else None
    if site is None:
        base_box = _read_toml(base).get("box", {})
        site = base_box.get("site") if isinstance(base_box, dict) else None
    if site is None:
        sites = ", ".join(known_sites(config_dir)) or "none"
        raise ConfigError([f"{box_file}: box.site: required key is missing: name the site this box "
                           f"belongs to (known sites: {sites})"])
    if not isinstance(site, str) or not _NAME.match(site):
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
        doc = _read_toml(path)
        if path.parent.name == "assets":
            extra = sorted(k for k in doc if k != "assets")
            if extra:
                raise ConfigError([f"{path}: {k}: only the [assets] table belongs in an asset file"
                                   for k in extra])
        _merge(merged, doc, path, (), origin)
    if box is not None and isinstance(merged.get("box"), dict) and "id" not in merged["box"]:
        merged["box"]["id"] = box  # a box is called by its file name unless it says otherwise
        origin[("box", "id")] = layers[-1]
    config = _validate(merged, origin, layers)
    warnings = [f"{_where(loc, origin, layers)}: {format_loc(loc)}: {msg}"
                for check in WARNING_CHECKS for loc, msg in check(config)]
    return LoadedConfig(config=config, layers=layers, merged=merged, origin=origin, warnings=warnings)


def load_config_file(path: Path) -> AppConfig:
    """Validate one standalone TOML file (tests, demo, ad-hoc runs)."""
    origin: dict[tuple[str, ...], Path] = {}
    merged: dict[str, Any] = {}
    _merge(merged, _read_toml(path), path, (), origin)
    return _validate(merged, origin, [path])


def load_config_dict(data: dict[str, Any], name: str = "<config>") -> AppConfig:
    """Validate a config given as a dict (as a TOML file would hold it); errors name ``name``."""
    origin: dict[tuple[str, ...], Path] = {}
    merged: dict[str, Any] = {}
    _merge(merged, data, Path(name), (), origin)
    return _validate(merged, origin, [Path(name)])


def _validate(merged: dict[str, Any], origin: dict[tuple[str, ...], Path], layers: list[Path]) -> AppConfig:
    try:
        config = AppConfig.model_validate(merged)
    except ValidationError as exc:
        problems = [_describe(err, origin, layers) for err in exc.errors()]
        raise ConfigError(list(dict.fromkeys(problems))) from None
    problems = []
    for check in CHECKS:
        for loc, msg in check(config):
            problems.append(f"{_where(loc, origin, layers)}: {format_loc(loc)}: {msg}")
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return config


# -- reading and merging ------------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SECRETISH = re.compile(r"pass|secret|token|credential|private|api[_-]?key", re.IGNORECASE)
_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_AT.search(msg)
        if m is not None:
            line, col = int(m.group(1)), int(m.group(2))
            text = _source_line(path, line)
            hint = " (a key or table defined twice?)" if "overwrite" in msg or "twice" in msg else ""
            what = _TOML_AT.sub("", msg).strip()
            raise ConfigError([f"{path}:{line}:{col}: not valid TOML: {what}{hint}: {text}"]) from None
        if "end of document" in msg:
            last = len(path.read_text(errors="replace").splitlines())
            what = msg.replace("(at end of document)", "").strip()
            raise ConfigError([f"{path}:{last}: not valid TOML: {what} at the end of the file "
                               "(an unclosed bracket or string?)"]) from None
        raise ConfigError([f"{path}: not valid TOML: {msg}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None


def _source_line(path: Path, line: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    if not 1 <= line <= len(lines):
        return "(end of file)"
    text = lines[line - 1].strip()
    key, eq, _ = text.partition("=")
    if eq and _SECRETISH.search(key):
        text = f"{key}= ..."
    return repr(text[:120])


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
            origin.setdefault(key_path, path)
            _merge(into[key], value, path, key_path, origin)
        else:
            into[key] = _copy(value)
            for sub in _leaf_paths(value, key_path):
                origin[sub] = path


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _leaf_paths(value: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaf_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaf_paths(v, (*prefix, str(i)))


# -- error messages -----------------------------------------------------------------------------------


def format_loc(loc: Iterable[str | int]) -> str:
    """A key path as TOML would write it: ``sources.opcua[0].endpoint``, ``assets.tags."line1.x".unit``."""
    from contextualize.assets import format_loc as fmt

    return fmt(loc) or "(top level)"


def _where(loc: Loc, origin: dict[tuple[str, ...], Path], layers: list[Path]) -> Path:
    key = tuple(str(p) for p in loc)
    for n in range(len(key), 0, -1):
        where = origin.get(key[:n])
        if where is not None:
            return where
    return layers[-1]


def _describe(err: Any, origin: dict[tuple[str, ...], Path], layers: list[Path]) -> str:
    loc: Loc = tuple(p for p in err["loc"] if isinstance(p, int) or not _is_pydantic_tag(p))
    where = _where(loc, origin, layers)
    kind = err["type"]
    if kind == "extra_forbidden":
        expected = "no such key (misspelt?)"
        known = _known_keys(loc[:-1])
        if known:
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            expected += f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    elif kind == "missing":
        expected = "required key is missing"
    else:
        expected = err["msg"]
        value = err.get("input")
        if value is not None and not isinstance(value, dict | list) and not _is_secret_loc(loc):
            expected += f" (got {_scrub(repr(value))})"
    return f"{where}: {format_loc(loc)}: {expected}"


def _is_pydantic_tag(part: str) -> bool:
    """Union members and validators pydantic puts into ``loc`` (``function-after[...]``, ``SecretRef``)."""
    return part.startswith(("function-", "tagged-union[", "lax-or-strict[")) or part in _MODEL_NAMES


_MODEL_NAMES = {"SecretRef"}


def _scrub(text: str) -> str:
    """Hide the password part of URLs (``scheme://user:pw@host`` -> ``scheme://user:***@host``)."""
    return re.sub(r"(://[^/\s:@]*:)[^@/\s]*@", r"\1***@", text)


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``; other unions -> a model or container member, if there is one."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        for a in args:
            if a is SecretRef:
                return a
        for a in args:
            if (isinstance(a, type) and issubclass(a, BaseModel)) or typing.get_origin(a) in (list, dict):
                return a
        return args[0] if args else tp
    return tp


def _type_at(loc: Loc) -> Any:
    tp: Any = AppConfig
    for part in loc:
        tp = _unwrap(tp)
        if tp is SecretRef and not isinstance(part, int):
            tp = SecretRef.model_fields[str(part)].annotation if str(part) in SecretRef.model_fields else None
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = tp.model_fields.get(str(part))
            tp = None if f is None else f.annotation
        elif typing.get_origin(tp) in (list, tuple, dict, set):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    return tp


def _known_keys(loc: Loc) -> list[str]:
    tp = _unwrap(_type_at(loc))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sorted(tp.model_fields)
    return []


def _is_secret_loc(loc: Loc) -> bool:
    if any(_SECRETISH.search(str(p)) for p in loc):
        return True
    tp: Any = AppConfig
    for part in loc:
        tp = _unwrap(tp)
        if tp is SecretRef:
            return True
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = tp.model_fields.get(str(part))
            if f is None:
                return False
            tp = f.annotation
        elif typing.get_origin(tp) in (list, tuple, dict, set):
            tp = typing.get_args(tp)[-1]
        else:
            return False
    return _unwrap(tp) is SecretRef


# -- rendering, schema, secrets -----------------------------------------------------------------------


def redacted(model: BaseModel) -> Any:
    """A JSON-able view of a config in which every secret is replaced by its reference."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretRef):
            return value.describe()
        if isinstance(value, BaseModel):
            return {name: walk(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, str):
            return _scrub(value)
        return value

    return walk(model)


def secret_refs(config: AppConfig) -> list[tuple[str, SecretRef]]:
    """Every secret reference in the config with its key path."""
    found: list[tuple[str, SecretRef]] = []

    def walk(value: Any, loc: Loc) -> None:
        if isinstance(value, SecretRef):
            found.append((format_loc(loc), value))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), (*loc, name))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(v, (*loc, i))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, (*loc, str(k)))

    walk(config, ())
    return found


def missing_secrets(config: AppConfig) -> list[str]:
    """One line per secret that cannot be resolved here (names where it was looked for, never a value)."""
    out = []
    for key, ref in secret_refs(config):
        try:
            ref.resolve()
        except LookupError as exc:
            out.append(f"{key}: {exc}")
    return out


SCHEMA_ID = "https://factory-edge.invalid/schema/config.schema.json"


def json_schema() -> dict[str, Any]:
    """JSON schema of a merged config (each layer file is a partial instance of it)."""
    schema = AppConfig.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "Factory Edge config", **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    """The committed form of :func:`json_schema` (firmware-config/schema/config.schema.json)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
