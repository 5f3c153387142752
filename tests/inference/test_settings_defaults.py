"""One source of truth for the window defaults: the settings model; ``WindowSpec`` and base.toml agree."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from inference.settings import InferenceSettings
from inference.windows import WindowSpec

BASE = Path(__file__).parents[2] / "firmware-config" / "base.toml"


def test_window_spec_defaults_are_the_settings_defaults() -> None:
    assert WindowSpec() == WindowSpec.from_settings(InferenceSettings())
    assert {f.name for f in dataclasses.fields(WindowSpec)} <= set(InferenceSettings.model_fields)


def test_base_toml_repeats_the_window_defaults_exactly() -> None:
    shipped = tomllib.loads(BASE.read_text())["inference"]
    defaults = InferenceSettings()
    for key in ("window_s", "hop_s", "grid_hz"):
        assert shipped.get(key, getattr(defaults, key)) == getattr(defaults, key), key
    assert (defaults.window_s, defaults.hop_s, defaults.grid_hz) == (10.0, 5.0, 2.0)
