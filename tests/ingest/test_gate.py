"""The data-quality gate: every hard rule dead-letters with its reason, every soft rule flags; all counted."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from edge.core.datamodel import DEAD_LETTERS, SAMPLES, Quality, QualityFlag, samples_from_arrays
from ingest.gate import QualityGate
from ingest.settings import QualitySettings

NOW = 1_772_366_400_000_000


def batch(
    tags: list[str], ts: list[int], values: list[float], quality: list[int] | None = None
) -> pa.RecordBatch:
    return samples_from_arrays(
        np.asarray(ts), tags, np.asarray(values, dtype=float), source="t", quality=quality
    )


def test_nan_and_inf_are_dead_letters() -> None:
    gate = QualityGate(QualitySettings())
    kept, dead = gate.apply(
        batch(
            ["a"] * 4, [NOW - 4, NOW - 3, NOW - 2, NOW - 1], [1.0, float("nan"), float("inf"), -float("inf")]
        ),
        NOW,
    )
    assert kept.num_rows == 1 and kept.schema == SAMPLES and dead.schema == DEAD_LETTERS
    assert dead.column("reason").to_pylist() == ["nan", "inf", "inf"]
    assert dead.column("tag").to_pylist() == ["a"] * 3
    assert dead.column("payload").to_pylist()[0].startswith(b"a,")
    assert gate.counters["nan"] == 1 and gate.counters["inf"] == 2


def test_timestamps_too_far_in_the_future_or_past() -> None:
    gate = QualityGate(QualitySettings(max_future_s=5, max_past_s=60))
    kept, dead = gate.apply(
        batch(["a"] * 3, [NOW + 6_000_000, NOW - 61_000_000, NOW + 4_000_000], [1, 2, 3]), NOW
    )
    assert kept.column("value").to_pylist() == [3.0]
    assert dead.column("reason").to_pylist() == ["ts_future", "ts_past"]
    assert gate.counters["ts_future"] == 1 and gate.counters["ts_past"] == 1


def test_duplicates_within_a_batch_and_across_batches() -> None:
    gate = QualityGate(QualitySettings())
    kept, dead = gate.apply(
        batch(["a", "a", "b", "a"], [NOW - 10, NOW - 10, NOW - 10, NOW - 9], [1, 2, 3, 4]), NOW
    )
    assert kept.column("value").to_pylist() == [1.0, 3.0, 4.0]  # the first one stays
    assert dead.column("reason").to_pylist() == ["duplicate"]
    # a redelivered batch: all duplicates; a new sample of the same tags is fine
    kept, dead = gate.apply(batch(["a", "b", "a"], [NOW - 10, NOW - 10, NOW - 8], [1, 3, 5]), NOW)
    assert kept.column("value").to_pylist() == [5.0]
    assert gate.counters["duplicate"] == 3
    # an out-of-order sample that was never seen is not a duplicate
    kept, _ = gate.apply(batch(["a"], [NOW - 100], [6]), NOW)
    assert kept.num_rows == 1


def test_duplicates_kept_when_configured() -> None:
    gate = QualityGate(QualitySettings(drop_duplicates=False))
    kept, dead = gate.apply(batch(["a", "a"], [NOW - 1, NOW - 1], [1, 1]), NOW)
    assert kept.num_rows == 2 and dead.num_rows == 0


def test_out_of_range_flag_and_unmapped_policy() -> None:
    gate = QualityGate(QualitySettings(unmapped="keep"), {"a": (0.0, 10.0), "b": (None, 5.0)})
    kept, dead = gate.apply(
        batch(["a", "a", "b", "b", "c"], [NOW - 5, NOW - 4, NOW - 3, NOW - 2, NOW - 1], [-1, 5, -100, 6, 1]),
        NOW,
    )
    f = kept.column("flags").to_pylist()
    assert f[:4] == [int(QualityFlag.OUT_OF_RANGE), 0, 0, int(QualityFlag.OUT_OF_RANGE)]
    assert f[4] == int(QualityFlag.UNMAPPED)
    assert gate.counters["out_of_range"] == 2 and gate.counters["unmapped"] == 1
    strict = QualityGate(QualitySettings(unmapped="dead_letter"), {"a": (0.0, 10.0)})
    kept, dead = strict.apply(batch(["a", "c"], [NOW - 2, NOW - 1], [1, 1]), NOW)
    assert kept.num_rows == 1 and dead.column("reason").to_pylist() == ["unmapped_tag"]
    assert strict.counters["unmapped_tag"] == 1


def test_stuck_sensor_across_batches() -> None:
    gate = QualityGate(QualitySettings(stuck_samples=5))
    kept, _ = gate.apply(batch(["a"] * 3 + ["b"] * 3, list(range(NOW - 6, NOW)), [7, 7, 7, 1, 2, 3]), NOW)
    assert kept.column("flags").to_pylist() == [0] * 6
    kept, _ = gate.apply(
        batch(["a"] * 4 + ["b"], [NOW + 1, NOW + 2, NOW + 3, NOW + 4, NOW + 5], [7, 7, 7, 8, 3]), NOW + 10
    )
    stuck = int(QualityFlag.STUCK)
    assert kept.column("flags").to_pylist() == [0, stuck, stuck, 0, 0]  # the 5th and 6th 7 in a row
    assert gate.counters["stuck"] == 2


def test_spike_against_recent_robust_statistics() -> None:
    gate = QualityGate(QualitySettings(spike_sigma=8.0), min_history=16)
    rng = np.random.default_rng(1)
    n = 40
    gate.apply(
        batch(["a"] * n, list(range(NOW - 1000, NOW - 1000 + n)), list(10 + rng.normal(0, 0.1, n))), NOW
    )
    values = list(10 + rng.normal(0, 0.1, 10))
    values[4] = 25.0
    kept, dead = gate.apply(batch(["a"] * 10, list(range(NOW - 500, NOW - 490)), values), NOW)
    flags = kept.column("flags").to_pylist()
    assert flags[4] == int(QualityFlag.SPIKE) and sum(1 for f in flags if f) == 1
    assert gate.counters["spike"] == 1 and dead.num_rows == 0


def test_uncertain_source_flag_and_counts() -> None:
    gate = QualityGate(QualitySettings())
    kept, _ = gate.apply(
        batch(["a", "a"], [NOW - 2, NOW - 1], [1, 2], quality=[int(Quality.GOOD), int(Quality.UNCERTAIN)]),
        NOW,
    )
    assert kept.column("flags").to_pylist() == [0, int(QualityFlag.UNCERTAIN_SOURCE)]
    assert gate.counters["in"] == 2 and gate.counters["kept"] == 2


def test_many_tags_vectorized_batch() -> None:
    gate = QualityGate(QualitySettings())
    n = 20_000
    tags = [f"t{i % 500}" for i in range(n)]
    ts = NOW - 10_000_000 + np.arange(n)
    vals = np.sin(np.arange(n) / 10.0)
    vals[123] = np.nan
    kept, dead = gate.apply(batch(tags, list(ts), list(vals)), NOW)
    assert kept.num_rows == n - 1 and dead.num_rows == 1
    assert gate.counters["in"] == n


def test_distinct_tag_ts_pairs_that_collided_under_the_old_hash_are_both_kept() -> None:
    """Tag ids 86 and 87 at these times gave one key under ``g * 1_000_003 ^ ts``; both are real samples."""
    from edge.core.datamodel import samples_from_arrays
    from ingest.gate import QualityGate
    from ingest.settings import QualitySettings

    tags = [f"t{i}" for i in range(88)]
    gate = QualityGate(QualitySettings(max_past_s=10 * 365 * 86400.0, max_future_s=10 * 365 * 86400.0))
    # register the tags in order so that t86 and t87 get ids 86 and 87
    base = 1795908205793987
    warm = samples_from_arrays([base - 10_000_000] * 88, tags, [1.0] * 88, source="s")
    gate.apply(warm, base)
    batch = samples_from_arrays([1795908205793987, 1795908205810820], ["t86", "t87"], [1.0, 2.0], source="s")
    kept, dead = gate.apply(batch, base)
    assert kept.num_rows == 2, dead.to_pylist()
    again, dead2 = gate.apply(batch, base)  # the very same pairs again are duplicates
    assert again.num_rows == 0 and dead2.num_rows == 2


def _with_nulls(b: pa.RecordBatch, column: str, where: list[bool]) -> pa.RecordBatch:
    col = b.column(column)
    plain = col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col
    values = [None if w else v for w, v in zip(where, plain.to_pylist(), strict=True)]
    nulled = pa.array(values, type=plain.type)
    cols = [nulled.cast(col.type) if n == column else b.column(n) for n in b.schema.names]
    return pa.RecordBatch.from_arrays(cols, schema=b.schema)


def test_a_sample_without_tag_or_timestamp_is_a_dead_letter_and_the_rest_goes_on() -> None:
    gate = QualityGate(QualitySettings())
    good = batch(["a", "b", "c", "d"], [NOW - 4, NOW - 3, NOW - 2, NOW - 1], [1, 2, 3, 4])
    kept, dead = gate.apply(_with_nulls(_with_nulls(good, "tag", [True, False, False, False]),
                                        "ts", [False, False, True, False]), NOW)
    assert kept.column("tag").to_pylist() == ["b", "d"]
    assert dead.column("reason").to_pylist() == ["missing_field", "missing_field"]
    assert all("no tag or no timestamp" in d for d in dead.column("detail").to_pylist())
    assert gate.counters["missing_field"] == 2 and gate.counters["kept"] == 2
    # every tag missing: all dead letters, no crash
    kept, dead = gate.apply(_with_nulls(good, "tag", [True] * 4), NOW)
    assert kept.num_rows == 0 and dead.column("reason").to_pylist() == ["missing_field"] * 4
