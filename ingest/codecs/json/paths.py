"""Dotted paths into parsed JSON, topic patterns and the variables a tag template may name."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

Getter = Callable[[Any], Any]


def make_getter(path: str) -> Getter:
    """A fast getter for a dotted path (``a.b.0.c``); raises KeyError/IndexError/TypeError when absent."""
    parts: list[str | int] = [int(p) if p.lstrip("-").isdigit() else p for p in path.split(".") if p != ""]
    if not parts:
        return lambda obj: obj
    if len(parts) == 1:
        return operator.itemgetter(parts[0])
    getters = [operator.itemgetter(p) for p in parts]

    def get(obj: Any) -> Any:
        for g in getters:
            obj = g(obj)
        return obj

    return get


def get_or(getter: Getter, default: Any) -> Getter:
    def get(obj: Any) -> Any:
        try:
            return getter(obj)
        except (KeyError, IndexError, TypeError):
            return default

    return get


def compile_topic_pattern(pattern: str) -> re.Pattern[str]:
    """``plant/{line}/{machine}/{measure}`` to a regex with named groups (``{rest*}`` spans levels)."""
    out = []
    for piece in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\*?\})", pattern):
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            out.append(f"(?P<{name[:-1]}>.+)" if name.endswith("*") else f"(?P<{name}>[^/]+)")
        else:
            out.append(re.escape(piece).replace(r"\+", "[^/]+").replace(r"\#", ".*"))
    return re.compile("^" + "".join(out) + "$")


class TopicVars(dict[str, str]):
    """Template variables: named topic groups, ``{topic}``, and topic levels ``{l0}``, ``{l1}``..."""

    def __init__(self, values: dict[str, str], topic: str) -> None:
        super().__init__(values)
        self._levels = topic.split("/")

    def __missing__(self, key: str) -> str:
        if key.startswith("l") and key[1:].isdigit() and int(key[1:]) < len(self._levels):
            return self._levels[int(key[1:])]
        raise LookupError(f"tag template names {{{key}}}, which the topic pattern does not define")
