"""The asset model: built from [assets], validated with the names involved, wired into config validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contextualize.assets import AssetModel, AssetModelError, format_loc
from contextualize.settings import AssetSettings
from edge.app.config import ConfigError, load_config
from tests.edge.app.test_config import FIRMWARE, write_tree

EQUIPMENT = {
    "packaging/line1/cell1/press1": {"kind": "press"},
    "packaging/line1/cell2/press2": {},
}
TAGS: dict[str, dict[str, Any]] = {
    "l1.p1.vib": {"asset": "packaging/line1/cell1/press1", "measure": "vibration", "min": 0, "max": 50},
    "l1.p1.temp": {"asset": "packaging/line1/cell1/press1", "measure": "temperature", "unit": "degF",
                   "min": -4, "max": 302, "rate_hz": 10},
    "l1.p2.pres": {"asset": "packaging/line1/cell2/press2", "measure": "pressure", "unit": "kPa",
                   "max": 25000},
}


def settings(**over: Any) -> AssetSettings:
    data: dict[str, Any] = {"enterprise": "acme", "site": "plant1", "equipment": dict(EQUIPMENT),
                            "tags": {k: dict(v) for k, v in TAGS.items()}}
    data.update(over)
    return AssetSettings.model_validate(data)


def issues(s: AssetSettings) -> str:
    with pytest.raises(AssetModelError) as exc:
        AssetModel.from_settings(s)
    return str(exc.value)


def test_model_from_settings() -> None:
    m = AssetModel.from_settings(settings())
    assert m.equipment_paths() == ["acme/plant1/packaging/line1/cell1/press1",
                                   "acme/plant1/packaging/line1/cell2/press2"]
    t = m.tag("l1.p1.temp")
    assert t is not None
    assert (t.asset, t.measure, t.unit, t.canonical_unit) == (
        "acme/plant1/packaging/line1/cell1/press1", "temperature", "degF", "degC")
    assert t.topic == "acme/plant1/packaging/line1/cell1/press1/temperature"
    assert t.from_canonical([100.0])[0] == pytest.approx(212.0, rel=1e-15)
    assert t.to_canonical(t.from_canonical([37.5]))[0] == pytest.approx(37.5, rel=1e-15)
    assert m.expected_rate("l1.p1.temp") == 10
    lo, hi = m.valid_range("l1.p1.temp")  # canonical unit
    assert lo == pytest.approx(-20.0, abs=1e-12) and hi == pytest.approx(150.0, abs=1e-12)
    assert m.valid_range("l1.p2.pres") == (None, 250.0)
    assert m.valid_range("nope") == (None, None)
    assert m.raw_valid_ranges()["l1.p1.temp"] == (-4, 302)
    vib = m.tag("l1.p1.vib")
    assert vib is not None and vib.unit == "mm/s" and vib.conversion.identity  # default: the canonical unit
    assert m.paths_at("line") == ["acme/plant1/packaging/line1"]
    assert m.children("") == ["acme"]
    assert m.children("acme/plant1/packaging/line1") == [
        "acme/plant1/packaging/line1/cell1", "acme/plant1/packaging/line1/cell2"]
    measures = [x.measure for x in m.tags_of("acme/plant1/packaging/line1/cell1/press1")]
    assert measures == ["temperature", "vibration"]


def test_tag_mapped_twice_onto_one_topic() -> None:
    tags = {k: dict(v) for k, v in TAGS.items()}
    tags["l1.p1.vib.dup"] = {"asset": "packaging/line1/cell1/press1", "measure": "vibration"}
    text = issues(settings(tags=tags))
    assert 'assets.tags."l1.p1.vib.dup"' in text
    assert "'l1.p1.vib'" in text and "mapped twice" in text


def test_equipment_with_the_wrong_depth() -> None:
    text = issues(settings(equipment={**EQUIPMENT, "packaging/cell9/press9": {}}))
    assert 'assets.equipment."packaging/cell9/press9"' in text
    assert "has 3 level(s); expected 4: area/line/cell/equipment" in text
    text = issues(settings(equipment={**EQUIPMENT, "a/b/c/d/e": {}}))
    assert "'a/b/c/d/e' has 5 level(s)" in text


def test_unknown_unit_names_tag_and_unit() -> None:
    tags = {k: dict(v) for k, v in TAGS.items()}
    tags["l1.p1.temp"]["unit"] = "degreesFahrenheitish"
    text = issues(settings(tags=tags))
    assert 'assets.tags."l1.p1.temp".unit: unknown unit \'degreesFahrenheitish\'' in text


def test_unit_of_the_wrong_dimension() -> None:
    tags = {k: dict(v) for k, v in TAGS.items()}
    tags["l1.p1.vib"]["unit"] = "g_0"  # an acceleration, not a velocity
    text = issues(settings(tags=tags))
    assert "'g_0'" in text and "cannot be converted to 'mm/s'" in text


def test_empty_valid_range() -> None:
    tags = {k: dict(v) for k, v in TAGS.items()}
    tags["l1.p1.vib"].update(min=60, max=50)
    text = issues(settings(tags=tags))
    assert 'assets.tags."l1.p1.vib".min: valid range is empty: min 60 > max 50' in text


def test_undeclared_equipment_with_a_suggestion() -> None:
    tags = {k: dict(v) for k, v in TAGS.items()}
    tags["l1.p1.vib"]["asset"] = "packaging/line1/cell1/pres1"
    text = issues(settings(tags=tags))
    assert 'assets.tags."l1.p1.vib".asset' in text and "did you mean 'packaging/line1/cell1/press1'" in text


def test_unknown_measure_and_a_site_measure() -> None:
    tags = {k: dict(v) for k, v in TAGS.items()}
    tags["l1.p1.vib"]["measure"] = "bearing_temperature"
    text = issues(settings(tags=tags))
    assert "unknown measure 'bearing_temperature'" in text
    m = AssetModel.from_settings(settings(tags=tags, measures={"bearing_temperature": "degC"}))
    assert m.canonical_unit("bearing_temperature") == "degC"
    assert m.canonical_unit("pressure") == "bar"  # the built-in measures stay


def test_bad_names() -> None:
    text = issues(settings(enterprise="ac/me", equipment={"packaging/line+1/cell1/press1": {}}, tags={}))
    assert "assets.enterprise" in text and "'ac/me'" in text
    assert "'line+1'" in text


def test_all_problems_reported_together() -> None:
    tags = {k: dict(v) for k, v in TAGS.items()}
    tags["l1.p1.vib"].update(min=60, max=50)
    tags["l1.p1.temp"]["unit"] = "furlongs"
    with pytest.raises(AssetModelError) as exc:
        AssetModel.from_settings(settings(tags=tags))
    assert len(exc.value.issues) == 2


def test_format_loc() -> None:
    assert format_loc(("sources", "opcua", 0, "endpoint")) == "sources.opcua[0].endpoint"
    assert format_loc(("assets", "tags", "a.b", "unit")) == 'assets.tags."a.b".unit'
    assert format_loc(("assets", "equipment", "x/y")) == 'assets.equipment."x/y"'


# -- wired into config validation -----------------------------------------------------------------


ASSET_FILE = """
[assets]
enterprise = "acme"
site = "plant1"
[assets.equipment]
"packaging/line1/cell1/press1" = {}
[assets.tags]
"t1" = { asset = "packaging/line1/cell1/press1", measure = "temperature", unit = "degF" }
"t2" = { asset = "packaging/line1/cell1/press1", measure = "pressure", unit = "psi", min = 0, max = 3000 }
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path, {
        "base.toml": "[log]\nlevel = 'info'\n",
        "sites/s1.toml": "",
        "assets/s1.toml": ASSET_FILE,
        "boxes/b1.toml": '[box]\nsite = "s1"\n',
    })


def test_config_validation_catches_asset_problems_with_file_and_key(tree: Path) -> None:
    load_config(tree, "b1")  # fine as written
    write_tree(tree, {"assets/s1.toml": ASSET_FILE.replace('unit = "psi"', 'unit = "psj"')
                      + '[assets.equipment."packaging/cell1/press9"]\n'})
    with pytest.raises(ConfigError) as exc:
        load_config(tree, "b1")
    text = "\n".join(exc.value.problems)
    assert f"{tree / 'assets/s1.toml'}: assets.tags.t2.unit: unknown unit 'psj'" in text
    assert f"{tree / 'assets/s1.toml'}: assets.equipment.\"packaging/cell1/press9\": equipment path" in text


def test_box_layer_overrides_one_tag_key_by_key(tree: Path) -> None:
    write_tree(tree, {"boxes/b1.toml": '[box]\nsite = "s1"\n[assets.tags.t2]\nmax = 1500\n'})
    loaded = load_config(tree, "b1")
    t2 = loaded.config.assets.tags["t2"]
    assert (t2.unit, t2.min, t2.max) == ("psi", 0, 1500)
    write_tree(tree, {"boxes/b1.toml": '[box]\nsite = "s1"\n[assets.tags.t2]\nmin = 2000\nmax = 1500\n'})
    with pytest.raises(ConfigError) as exc:
        load_config(tree, "b1")
    text = "\n".join(exc.value.problems)
    assert f"{tree / 'boxes/b1.toml'}: assets.tags.t2.min: valid range is empty" in text


def test_tag_defined_twice_in_one_file_names_the_tag(tree: Path) -> None:
    write_tree(tree, {"assets/s1.toml": ASSET_FILE + '"t1" = { asset = "x", measure = "current" }\n'})
    with pytest.raises(ConfigError) as exc:
        load_config(tree, "b1")
    (line,) = exc.value.problems
    assert "defined twice" in line and '"t1" = ' in line and line.startswith(f"{tree / 'assets/s1.toml'}:10:")


def test_demo_plant() -> None:
    loaded = load_config(FIRMWARE, "demo-box")
    m = AssetModel.from_settings(loaded.config.assets)
    assert len(m.equipment) == 6 and len(m.tags) == 24
    assert m.paths_at("line") == ["acme/plant1/packaging/line1", "acme/plant1/packaging/line2"]
    assert {t.measure for t in m.tags.values()} == {"vibration", "temperature", "current", "pressure"}
    assert {t.unit for t in m.tags.values()} >= {"degF", "kPa", "psi"}
    assert all(t.rate_hz == 10 for t in m.tags.values())
    source_tags = {n.tag for s in loaded.config.sources.opcua for n in s.nodes}
    assert source_tags == set(m.tags)  # every node the box reads is mapped
