"""The layout the architecture promises: complete plugin folders, small modules, layered imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

from edge.core.plugins import Plugin

REPO = Path(__file__).resolve().parents[1]
AREAS = ("edge", "ingest", "contextualize", "inference", "tui")
MAX_LINES = 400


def _plugins() -> Iterator[tuple[str, Plugin[Any, Any]]]:
    from edge.app import plugins as tables

    for table in ("SOURCES", "CODECS", "RUNTIMES", "MODEL_KINDS"):
        for plugin in getattr(tables, table, ()):
            yield table, plugin
    yield "HISTORIAN", tables.HISTORIAN
    for _, plugin in tables.SINKS:
        yield "SINKS", plugin


def _folder(plugin: Plugin[Any, Any]) -> Path:
    return REPO.joinpath(*plugin.package.split("."))


PLUGINS = list(_plugins())


@pytest.mark.parametrize(("table", "plugin"), PLUGINS, ids=[f"{t}:{p.name}" for t, p in PLUGINS])
def test_plugin_folder_has_readme_and_a_valid_sample(table: str, plugin: Plugin[Any, Any]) -> None:
    folder = _folder(plugin)
    assert (folder / "README.md").is_file(), f"{table} {plugin.name}: no README.md in {folder}"
    sample = folder / plugin.sample
    assert sample.is_file(), f"{table} {plugin.name}: no {plugin.sample} in {folder}"
    with sample.open("rb") as fh:
        plugin.settings.model_validate(tomllib.load(fh))
    import_module(plugin.package)


def test_plugin_names_are_unique_per_table() -> None:
    seen: dict[str, set[str]] = {}
    for table, plugin in PLUGINS:
        names = seen.setdefault(table, set())
        assert plugin.name not in names, f"{table} lists {plugin.name!r} twice"
        names.add(plugin.name)


def test_a_sample_that_does_not_fit_its_settings_is_refused(tmp_path: Path) -> None:
    """The sample check can fail: a misspelt key in a sample is an error."""
    from pydantic import ValidationError

    from edge.app.plugins import HISTORIAN

    text = (_folder(HISTORIAN) / "sample.toml").read_text() + '\nwrite_methd = "copy"\n'
    with pytest.raises(ValidationError, match="write_methd"):
        HISTORIAN.settings.model_validate(tomllib.loads(text))


def _library_modules() -> Iterator[Path]:
    for area in AREAS:
        for path in (REPO / area).rglob("*.py"):
            if not path.name.endswith("_pb2.py") and "__pycache__" not in path.parts:
                yield path


def test_no_library_module_over_400_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in _library_modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_every_package_folder_has_a_readme() -> None:
    missing = [str(d.relative_to(REPO)) for area in AREAS for d in [REPO / area, *(REPO / area).rglob("*")]
               if d.is_dir() and (d / "__init__.py").is_file() and not (d / "README.md").is_file()]
    assert not missing, f"folders without a README.md (what it owns, how to extend it): {missing}"


def test_no_import_cycles_between_modules() -> None:
    import grimp

    graph = grimp.build_graph(*AREAS, cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if module.startswith(f"{imported}.") or imported.startswith(f"{module}."):
                continue  # a package and its own modules
            if module < imported and graph.chain_exists(imported, module):
                cycles.append((module, imported))
    assert not cycles, f"import cycles (module, module it imports that imports it back): {cycles}"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=120)


def test_import_contract_holds_and_catches_an_upward_import(tmp_path: Path) -> None:
    assert _lint_imports(REPO).returncode == 0
    copy = tmp_path / "repo"
    for area in AREAS:
        shutil.copytree(REPO / area, copy / area,
                        ignore=shutil.ignore_patterns("__pycache__", "*.tcss", "*.svg"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    ground = copy / "edge" / "core" / "ports.py"
    ground.write_text(ground.read_text() + "\nfrom edge.app.config import AppConfig  # upward, on purpose\n")
    out = _lint_imports(copy)
    assert out.returncode != 0, out.stdout
    assert "edge.core.ports -> edge.app.config" in out.stdout, out.stdout
