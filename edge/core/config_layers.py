"""Layered TOML config, the generic part: reading, merging key by key, errors that name the file and the key
path, and secrets shown by reference only. The appliance's own model and layers are in ``edge.app.config``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edge.core.settings import SecretRef

Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """A config that cannot be used. ``problems`` holds one line per problem: file, key path, expectation."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# -- reading and merging ------------------------------------------------------------------------------

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SECRETISH = re.compile(r"pass|secret|token|credential|private|api[_-]?key", re.IGNORECASE)
_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_toml(path: Path) -> dict[str, Any]:
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


def merge_layer(
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
            merge_layer(into[key], value, path, key_path, origin)
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
    return key_path(loc) or "(top level)"


def key_path(loc: Iterable[str | int]) -> str:
    """A key path as TOML would write it: ``sources.opcua[0].endpoint``, ``assets.tags."line1.x".unit``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _bare(part) else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out += f".{text}" if out else text
    return out


def _bare(key: str) -> bool:
    return bool(key) and all(c.isalnum() or c in "_-" for c in key) and key.isascii()


def where_set(loc: Loc, origin: dict[tuple[str, ...], Path], layers: list[Path]) -> Path:
    """The layer file that set the key at ``loc`` (or its nearest parent); the last layer otherwise."""
    key = tuple(str(p) for p in loc)
    for n in range(len(key), 0, -1):
        where = origin.get(key[:n])
        if where is not None:
            return where
    return layers[-1]


def describe_error(err: Any, origin: dict[tuple[str, ...], Path], layers: list[Path],
                   root: type[BaseModel]) -> str:
    """One pydantic error as a line naming the file that set the key, its path and what was expected."""
    loc: Loc = tuple(p for p in err["loc"] if isinstance(p, int) or not _is_pydantic_tag(p))
    where = where_set(loc, origin, layers)
    kind = err["type"]
    if kind == "extra_forbidden":
        expected = "no such key (misspelt?)"
        known = _known_keys(loc[:-1], root)
        if known:
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            expected += f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    elif kind == "missing":
        expected = "required key is missing"
    else:
        expected = err["msg"]
        value = err.get("input")
        if value is not None and not isinstance(value, dict | list) and not _is_secret_loc(loc, root):
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


def _type_at(loc: Loc, root: type[BaseModel]) -> Any:
    tp: Any = root
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


def _known_keys(loc: Loc, root: type[BaseModel]) -> list[str]:
    tp = _unwrap(_type_at(loc, root))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sorted(tp.model_fields)
    return []


def _is_secret_loc(loc: Loc, root: type[BaseModel]) -> bool:
    if any(_SECRETISH.search(str(p)) for p in loc):
        return True
    tp: Any = root
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


def secret_refs(config: BaseModel) -> list[tuple[str, SecretRef]]:
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


def missing_secrets(config: BaseModel) -> list[str]:
    """One line per secret that cannot be resolved here (names where it was looked for, never a value)."""
    out = []
    for key, ref in secret_refs(config):
        try:
            ref.resolve()
        except LookupError as exc:
            out.append(f"{key}: {exc}")
    return out


