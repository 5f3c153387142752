"""Contextualizer: samples in, contextualized samples (and dead letters) out, column-wise."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from contextualize.assets import AssetModel
from contextualize.enrich import Contextualizer
from edge.app.config import load_config
from edge.core.datamodel import CONTEXTUALIZED_SAMPLES, DEAD_LETTERS, QualityFlag, samples_from_arrays
from tests.edge.app.test_config import FIRMWARE

P1 = "acme/plant1/packaging/line1/cell1/press1"
L2P1 = "acme/plant1/packaging/line2/cell1/press1"


@pytest.fixture(scope="module")
def model() -> AssetModel:
    return AssetModel.from_settings(load_config(FIRMWARE, "demo-box").config.assets)


def batch(tags: list[str], values: list[float | None], flags: list[int] | None = None) -> pa.RecordBatch:
    n = len(tags)
    b = samples_from_arrays(np.arange(n, dtype=np.int64) * 100_000 + 1_700_000_000_000_000, tags,
                            [np.nan if v is None else v for v in values], source="opcua:sim", flags=flags)
    if any(v is None for v in values):  # real nulls, not NaN
        mask = pa.array([v is None for v in values])
        b = b.set_column(3, "value", pc.if_else(mask, pa.scalar(None, pa.float64()), b.column("value")))
    return b


TAGS = ["line1.press1.vibration", "line2.press1.temperature", "line1.press3.pressure", "mystery.tag",
        "line2.press2.pressure", "line1.press1.temperature", "mystery.tag", "other.unmapped"]
VALUES = [3.5, 212.0, 250.0, 1.0, 14.5, 999.0, 2.0, None]


def test_mapped_and_unmapped_kept(model: AssetModel) -> None:
    ctx = Contextualizer(model, unmapped="keep")
    out, dead = ctx.enrich(batch(TAGS, VALUES, flags=[0, 0, 0, 0, 0, int(QualityFlag.STUCK), 0, 0]))
    assert out.schema == CONTEXTUALIZED_SAMPLES
    assert dead.num_rows == 0 and dead.schema == DEAD_LETTERS
    rows = out.to_pylist()
    assert [r["asset"] for r in rows] == [P1, L2P1, "acme/plant1/packaging/line1/cell3/press3", None,
                                          "acme/plant1/packaging/line2/cell2/press2", P1, None, None]
    assert [r["measure"] for r in rows][:3] == ["vibration", "temperature", "pressure"]
    assert [r["unit"] for r in rows] == ["mm/s", "degC", "bar", None, "bar", "degC", None, None]
    values = [r["value"] for r in rows]
    assert values[0] == 3.5
    assert values[1] == 100.0  # 212 degF, exactly
    assert values[2] == 2.5  # 250 kPa, exactly
    assert values[3] == 1.0  # unmapped: unchanged
    assert values[4] == pytest.approx(14.5 * 0.0689475729316836, rel=1e-12)  # psi
    assert values[7] is None  # nulls stay null
    flags = [r["flags"] for r in rows]
    assert flags[3] == flags[6] == flags[7] == QualityFlag.UNMAPPED
    assert flags[5] == QualityFlag.STUCK | QualityFlag.OUT_OF_RANGE  # 999 degC > 150, existing bits kept
    assert flags[0] == flags[1] == flags[2] == 0
    assert all(r[c] is None for r in rows for c in ("work_order", "product", "batch", "shift"))
    assert ctx.unmapped_total == 3
    assert ctx.unmapped_by_tag == {"mystery.tag": 2, "other.unmapped": 1}
    assert ctx.out_of_range_total == 1
    # per-batch dictionaries hold only what the batch uses
    assert sorted(out.column("asset").dictionary.to_pylist()) == sorted(
        {P1, L2P1, "acme/plant1/packaging/line1/cell3/press3", "acme/plant1/packaging/line2/cell2/press2"})


def test_unmapped_to_dead_letters(model: AssetModel) -> None:
    ctx = Contextualizer(model, unmapped="dead_letter")
    out, dead = ctx.enrich(batch(TAGS, VALUES))
    assert out.num_rows == 5 and out.column("asset").null_count == 0
    assert dead.schema == DEAD_LETTERS
    assert dead.column("tag").to_pylist() == ["mystery.tag", "mystery.tag", "other.unmapped"]
    assert set(dead.column("reason").to_pylist()) == {"unmapped_tag"}
    assert dead.column("source").to_pylist() == ["opcua:sim"] * 3
    details = [json.loads(d) for d in dead.column("detail").to_pylist()]
    assert details == [{"value": 1.0, "quality": 0}, {"value": 2.0, "quality": 0},
                       {"value": None, "quality": 0}]
    assert dead.column("ts").to_pylist() == batch(TAGS, VALUES).filter(
        pa.array([False, False, False, True, False, False, True, True])).column("ts").to_pylist()
    assert ctx.unmapped_total == 3


def test_context_join_hook_runs_last(model: AssetModel) -> None:
    seen: list[pa.Schema] = []

    def join(b: pa.RecordBatch) -> pa.RecordBatch:
        seen.append(b.schema)
        assert b.column("asset").null_count == 0  # runs after the asset columns are filled
        wo = pa.array(["WO-1"] * b.num_rows).dictionary_encode()
        i = b.schema.get_field_index("work_order")
        return b.set_column(i, CONTEXTUALIZED_SAMPLES.field("work_order"), wo)

    out, _ = Contextualizer(model, unmapped="dead_letter", context_join=join).enrich(
        batch(TAGS[:3], VALUES[:3]))
    assert out.column("work_order").to_pylist() == ["WO-1"] * 3
    assert len(seen) == 1


def test_range_check_can_be_off_and_empty_batches(model: AssetModel) -> None:
    ctx = Contextualizer(model, check_range=False)
    out, _ = ctx.enrich(batch(["line1.press1.temperature"], [999.0]))
    assert out.column("flags").to_pylist() == [0]
    out, dead = ctx.enrich(batch([], []))
    assert out.num_rows == 0 and out.schema == CONTEXTUALIZED_SAMPLES and dead.num_rows == 0


def test_plain_string_tag_column(model: AssetModel) -> None:
    b = batch(TAGS[:2], VALUES[:2])
    b = b.set_column(2, pa.field("tag", pa.string(), nullable=False), b.column("tag").cast(pa.string()))
    out, _ = Contextualizer(model).enrich(b)
    assert out.column("value").to_pylist() == [3.5, 100.0]


def test_large_batch_matches_per_tag_reference(model: AssetModel) -> None:
    rng = np.random.default_rng(3)
    names = [*model.tags, "unmapped.a", "unmapped.b"]
    idx = rng.integers(0, len(names), 200_000)
    tags = pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)), pa.array(names))
    values = rng.uniform(-100, 30000, idx.size)
    b = samples_from_arrays(np.arange(idx.size, dtype=np.int64), tags, values, source="s")
    ctx = Contextualizer(model)
    out, _ = ctx.enrich(b)
    got = out.column("value").to_numpy()
    assets = out.column("asset").cast(pa.string()).to_pylist()
    for i, name in enumerate(names):
        rows = np.flatnonzero(idx == i)
        t = model.tag(name)
        if t is None:
            np.testing.assert_array_equal(got[rows], values[rows])
            assert {assets[r] for r in rows[:50]} == {None}
            continue
        np.testing.assert_array_equal(got[rows], t.to_canonical(values[rows]))
        assert {assets[r] for r in rows[:50]} == {t.asset}
        lo, hi = model.valid_range(name)
        lo_, hi_ = (-np.inf if lo is None else lo), (np.inf if hi is None else hi)
        oor = (got[rows] < lo_) | (got[rows] > hi_)
        flags = out.column("flags").to_numpy()[rows]
        np.testing.assert_array_equal((flags & QualityFlag.OUT_OF_RANGE) != 0, oor)
    assert ctx.unmapped_total == int(np.count_nonzero(idx >= len(model.tags)))


def test_sliced_batch_with_nulls(model: AssetModel) -> None:
    full = batch(TAGS * 3, VALUES * 3)
    part = full.slice(5, 10)  # non-zero offsets in every column
    out, _ = Contextualizer(model).enrich(part)
    want, _ = Contextualizer(model).enrich(pa.RecordBatch.from_pylist(part.to_pylist(), schema=part.schema))
    assert out.to_pylist() == want.to_pylist()
    assert out.column("value").null_count == part.column("value").null_count
