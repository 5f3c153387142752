"""Plugin tables: one static, typed list per kind (sources, codecs, runtimes, model kinds, sinks).

The lists themselves live in :mod:`edge.app.plugins`, the one place that imports every area. An entry names
what config calls the plugin, the settings model its ``sample.toml`` validates against, its factory, and the
package (folder) that holds its README and sample. Adding a plugin is adding its folder and one entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

S = TypeVar("S", bound=BaseModel)
F = TypeVar("F")


class UnknownPlugin(LookupError):
    """A config named a plugin no table lists; the message names the choices."""


@dataclass(frozen=True)
class Plugin(Generic[S, F]):
    name: str  # what config calls it: codec = "json", runtime = "onnx", kind = "pca"
    settings: type[S]  # the model its sample.toml validates against
    factory: F  # builds it; its signature is the table's
    package: str  # the folder with README.md and sample.toml, as a dotted package name
    summary: str = ""
    sample: str = "sample.toml"  # another name where two plugins share a folder


def find(table: Sequence[Plugin[S, F]], name: str, *, kind: str) -> Plugin[S, F]:
    """The entry called ``name``; an :class:`UnknownPlugin` naming the choices otherwise."""
    for plugin in table:
        if plugin.name == name:
            return plugin
    raise UnknownPlugin(f"no {kind} called {name!r}; the {kind}s are: {', '.join(names(table))}")


def names(table: Sequence[Plugin[S, F]]) -> list[str]:
    return [plugin.name for plugin in table]
