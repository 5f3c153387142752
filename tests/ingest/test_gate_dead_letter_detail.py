"""The gate's dead letters say why: every one carries its reason and a detail naming the rule, the tag, the
value or timestamp that broke it and the setting behind the limit."""

from __future__ import annotations

import numpy as np

from edge.core.datamodel import samples_from_arrays
from ingest.gate import QualityGate
from ingest.settings import QualitySettings

NOW = 1_772_366_400_000_000  # 2026-03-01T12:00:00Z


def test_every_hard_rule_names_itself_and_the_value_in_the_detail() -> None:
    gate = QualityGate(QualitySettings(max_future_s=5, max_past_s=60, unmapped="dead_letter"),
                       {"a": (0.0, 10.0), "b": (None, None)})
    ts = [NOW - 1, NOW - 2, NOW + 6_000_000, NOW - 61_000_000, NOW - 5, NOW - 5, NOW - 7, NOW - 8]
    tags = ["a", "a", "a", "b", "b", "b", "zz", "a"]
    values = [float("nan"), -float("inf"), 1.0, 2.0, 3.5, 3.5, 4.0, 12.0]
    kept, dead = gate.apply(samples_from_arrays(np.asarray(ts), tags, np.asarray(values), source="t"), NOW)
    rows = dict(zip(dead.column("reason").to_pylist(), dead.column("detail").to_pylist(), strict=True))
    assert sorted(rows) == ["duplicate", "inf", "nan", "ts_future", "ts_past", "unmapped_tag"]
    assert kept.num_rows == 2  # the first of the duplicate pair and the out-of-range value (a soft flag)
    assert rows["nan"] == "rule nan: tag 'a' value nan is not a finite number"
    assert rows["inf"] == "rule inf: tag 'a' value -inf is not a finite number"
    assert rows["ts_future"].startswith(
        "rule ts_future: tag 'a' ts 2026-03-01T12:00:06.000000+00:00 is 6.000 s after")
    assert "max_future_s = 5" in rows["ts_future"]
    assert "2026-03-01T11:58:59.000000+00:00 is 61.000 s before" in rows["ts_past"]
    assert "max_past_s = 60" in rows["ts_past"] and "accept_past" in rows["ts_past"]
    assert rows["unmapped_tag"].startswith("rule unmapped_tag: tag 'zz' is not in the tag map")
    assert "tag 'b'" in rows["duplicate"] and "value 3.5" in rows["duplicate"]
    assert "2026-03-01T11:59:59.999995+00:00" in rows["duplicate"]


def test_a_timestamp_beyond_the_calendar_is_given_as_its_number() -> None:
    gate = QualityGate(QualitySettings())
    far = 2**62
    _, dead = gate.apply(samples_from_arrays(np.asarray([far]), ["a"], np.asarray([1.0]), source="t"), NOW)
    assert dead.column("reason").to_pylist() == ["ts_future"]
    assert f"ts {far} us" in dead.column("detail").to_pylist()[0]


def test_a_batch_with_nothing_rejected_has_no_dead_letters() -> None:
    gate = QualityGate(QualitySettings())
    kept, dead = gate.apply(samples_from_arrays(np.asarray([NOW - 1]), ["a"], np.asarray([1.0]), source="t"),
                            NOW)
    assert kept.num_rows == 1 and dead.num_rows == 0
