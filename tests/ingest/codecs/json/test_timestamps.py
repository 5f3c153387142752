"""Timestamps to epoch microseconds: ISO strings, epoch numbers by unit or guessed, out of range refused."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ingest.codecs.json.timestamps import cast_iso, epoch_to_us, ts_of

T_US = 1_772_323_200_000_000  # 2026-03-01T00:00:00Z


def test_iso_strings_honour_offsets_and_default_to_utc() -> None:
    assert ts_of("2026-03-01T00:00:00Z", "auto") == T_US
    assert ts_of("2026-03-01T01:00:00+01:00", "iso") == T_US
    assert ts_of("2026-03-01T00:00:00", "auto") == T_US
    got = cast_iso(pa.array(["2026-03-01T00:00:00Z", "2026-03-01T00:00:01Z"]))
    assert got is not None and got.tolist() == [T_US, T_US + 1_000_000]
    assert cast_iso(pa.array(["not a time"])) is None


def test_epoch_units_by_config_or_magnitude() -> None:
    s = T_US // 1_000_000
    assert ts_of(s, "epoch_s") == T_US
    for value in (s, s * 1000, T_US, T_US * 1000):
        assert ts_of(value, "auto") == T_US
    arr = np.array([T_US * 1000], dtype=np.int64)
    assert epoch_to_us(arr, "epoch_ns").tolist() == [T_US]


def test_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        ts_of(float("nan"), "auto")
    with pytest.raises(ValueError):
        ts_of(True, "auto")
    with pytest.raises(OverflowError):
        epoch_to_us(np.array([1e30]), "epoch_s")
