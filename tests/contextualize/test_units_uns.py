"""Units (pint, applied as one affine map per tag) and the unified namespace helpers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from contextualize import units
from contextualize.uns import (
    AssetPath,
    UnsError,
    ancestor,
    asset_path,
    events_topic,
    insight_filter,
    insight_topic,
    measure_topic,
    parse_asset,
    parse_topic,
)

ASSET = "acme/plant1/packaging/line1/cell1/press1"


def test_degf_to_degc_exact() -> None:
    got = units.convert([212.0, 32.0, -40.0, 98.6, -459.67], "degF", "degC")
    assert got[0] == 100.0 and got[1] == 0.0 and got[2] == -40.0
    assert got[3] == pytest.approx(37.0, rel=1e-15)
    assert got[4] == pytest.approx(-273.15, rel=1e-15)


def test_kpa_to_bar_exact() -> None:
    a = units.affine("kPa", "bar")
    assert (a.zero, a.mul, a.div) == (0.0, 1.0, 100.0)
    x = np.array([250.0, 101.325, 0.0, 12345.6])
    assert np.array_equal(a.apply(x), x / 100.0)
    assert a.apply(x)[0] == 2.5


def test_conversions_agree_with_pint_elementwise() -> None:
    import pint

    reg: Any = pint.UnitRegistry()
    rng = np.random.default_rng(7)
    x = rng.uniform(-500, 5000, 1000)
    pairs = [("psi", "bar"), ("in/s", "mm/s"), ("degF", "degC"), ("degC", "K"), ("W", "kW"), ("mA", "A")]
    for src, dst in pairs:
        want = reg.Quantity(x, src).to(dst).magnitude
        np.testing.assert_allclose(units.convert(x, src, dst), want, rtol=1e-13, atol=1e-12)


def test_identity_and_errors() -> None:
    assert units.affine("mm/s", "mm/s").identity
    with pytest.raises(units.UnitError, match="unknown unit 'bogons'"):
        units.affine("bogons", "bar")
    with pytest.raises(units.UnitError, match="cannot be converted"):
        units.affine("degC", "bar")
    for unit in units.DEFAULT_MEASURES.values():
        units.check_unit(unit)


def test_asset_path_build_and_parse() -> None:
    p = parse_asset(ASSET)
    assert p == AssetPath("acme", "plant1", "packaging", "line1", "cell1", "press1")
    assert str(p) == ASSET == asset_path(*p.parts)
    assert p.ancestor("line") == "acme/plant1/packaging/line1" == ancestor(ASSET, "line")
    assert p.ancestor("equipment") == ASSET
    assert p.topic("vibration") == f"{ASSET}/vibration"
    assert p.topic() == ASSET


@pytest.mark.parametrize("bad", ["acme/plant1/packaging/cell1/press1", "a/b/c/d/e/f/g", "", "a/b/c/d/e/+",
                                 "a/b/c/d/e/#", "a/b/c/d/e/_x", "a/b//d/e/f", "a/b/c/d/e/$SYS"])
def test_bad_asset_paths(bad: str) -> None:
    with pytest.raises(UnsError):
        parse_asset(bad)


def test_topics_round_trip() -> None:
    assert measure_topic(ASSET, "temperature") == f"{ASSET}/temperature"
    assert insight_topic(ASSET, "iforest", prefix="fe") == f"fe/{ASSET}/_insights/iforest"
    t = parse_topic(f"fe/{ASSET}/_insights/iforest", prefix="fe")
    assert (str(t.asset), t.kind, t.name) == (ASSET, "insights", "iforest")
    t = parse_topic(f"{ASSET}/temperature")
    assert (t.kind, t.name) == ("measure", "temperature")
    assert parse_topic(events_topic(ASSET)).kind == "events"
    assert parse_topic(ASSET).kind == "asset"
    assert insight_filter() == "+/+/+/+/+/+/_insights/+"
    with pytest.raises(UnsError):
        parse_topic(f"{ASSET}/a/b")
    with pytest.raises(UnsError):
        parse_topic(f"other/{ASSET}/x", prefix="fe")
    with pytest.raises(UnsError):
        measure_topic(ASSET, "temp/1")
