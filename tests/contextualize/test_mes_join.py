"""The as-of join of MES context: against a simple reference, nulls before and between context, precedence."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contextualize.mes_events import JOIN_KEYS
from contextualize.mes_join import attach_context, attach_insight_context, context_columns
from contextualize.mes_store import MesContextStore
from contextualize.mes_timeline import Interval, scope_prefixes
from edge.core.datamodel import CONTEXTUALIZED_SAMPLES, INSIGHTS, batch_from_rows
from tests.fixtures.mes import EQ1, EQ2, LINE, OTHER, event

SCOPES = ["e/s", "e/s/a1", "e/s/a1/l1", "e/s/a1/l2", "e/s/a1/l1/c/eq1", "e/s/a1/l1/c/eq2"]
ASSETS = ["e/s/a1/l1/c/eq1", "e/s/a1/l1/c/eq2", "e/s/a1/l2/c/eq1", "e/s/a2/l9/c/eq1", "x/y"]


def reference(
    intervals: list[Interval], assets: list[str | None], ts: list[int]
) -> dict[str, list[str | None]]:
    """Row by row: the most specific scope prefix with an interval that holds ts."""
    out: dict[str, list[str | None]] = {k: [] for k in JOIN_KEYS}
    for asset, t in zip(assets, ts, strict=True):
        for key in JOIN_KEYS:
            value = None
            for scope in scope_prefixes(asset) if asset else []:
                hit = [
                    iv.value
                    for iv in intervals
                    if iv.scope == scope
                    and iv.key == key
                    and iv.valid_from <= t
                    and (iv.valid_to is None or t < iv.valid_to)
                ]
                if hit:
                    value = hit[0]
                    break
            out[key].append(value)
    return out


def samples(assets: list[str | None], ts: list[int]) -> pa.RecordBatch:
    rows = [
        {"ts": t, "recv_ts": t, "tag": "t", "value": 1.0, "quality": 0, "flags": 0, "source": "s", "asset": a}
        for a, t in zip(assets, ts, strict=True)
    ]
    return batch_from_rows(rows, CONTEXTUALIZED_SAMPLES)


ops = st.lists(
    st.tuples(
        st.sampled_from(SCOPES),
        st.sampled_from(JOIN_KEYS),
        st.integers(0, 200),
        st.one_of(st.none(), st.sampled_from(["A", "B", "C", "D"])),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=ops,
    rows=st.lists(
        st.tuples(st.one_of(st.none(), st.sampled_from(ASSETS)), st.integers(-10, 220)),
        min_size=1,
        max_size=60,
    ),
)
def test_join_matches_reference(
    ops: list[tuple[str, str, int, str | None]], rows: list[tuple[str | None, int]]
) -> None:
    store = MesContextStore()
    for n, (scope, key, t, value) in enumerate(ops):
        store.set_value(scope, key, t, value, f"e{n}")
    assets = [a for a, _ in rows]
    ts = [t for _, t in rows]
    got = attach_context(samples(assets, ts), store)
    want = reference(store.intervals(), assets, ts)
    for key in JOIN_KEYS:
        assert got.column(key).to_pylist() == want[key], key
    assert got.schema == CONTEXTUALIZED_SAMPLES


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(JOIN_KEYS),
            st.integers(0, 100),
            st.one_of(st.none(), st.sampled_from(["A", "B", "C"])),
        ),
        max_size=25,
    ),
    order=st.randoms(use_true_random=False),
)
def test_store_changes_describe_exactly_what_changed(
    ops: list[tuple[str, int, str | None]], order: object
) -> None:
    """Applied in any order (late points included), each reported change is exactly the value difference,
    and the end state equals 'last point at or before t wins' (unique times per key)."""
    seen: set[tuple[str, int]] = set()
    uniq = [(k, t, v) for k, t, v in ops if (k, t) not in seen and not seen.add((k, t))]  # type: ignore[func-returns-value]
    shuffled = list(uniq)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    store = MesContextStore()
    grid = range(-2, 104)
    for n, (key, t, value) in enumerate(shuffled):
        before = [store.value_at("L", key, g) for g in grid]
        changes = store.set_value("L", key, t, value, f"e{n}")
        after = [store.value_at("L", key, g) for g in grid]
        marked: list[tuple[str | None, str | None] | None] = [None] * len(grid)
        for c in changes:
            assert c.old != c.new
            for i, g in enumerate(grid):
                if c.start <= g and (c.end is None or g < c.end):
                    assert marked[i] is None
                    marked[i] = (c.old, c.new)
        for i in range(len(grid)):
            if before[i] != after[i]:
                assert marked[i] == (before[i], after[i])
            else:
                assert marked[i] is None
    for key in JOIN_KEYS:
        pts = sorted((t, v) for k, t, v in uniq if k == key)
        for g in grid:
            prior = [v for t, v in pts if t <= g]
            assert store.value_at("L", key, g) == (prior[-1] if prior else None)


def test_before_any_context_is_null_and_gaps_are_null() -> None:
    store = MesContextStore()
    store.apply(event("work_order_started", 10, work_order="WO-1", product="P", batch="B1"))
    store.apply(event("work_order_completed", 20, work_order="WO-1"))
    store.apply(event("work_order_started", 30, work_order="WO-2", product="P"))
    base = event("work_order_started", 0, work_order="x").ts_us
    minutes = [0, 9.99, 10, 15, 19.99, 20, 25, 30, 45]
    ts = [base + int(m * 60e6) for m in minutes]
    got = attach_context(samples([EQ1] * len(ts), ts), store)
    assert got.column("work_order").to_pylist() == [
        None,
        None,
        "WO-1",
        "WO-1",
        "WO-1",
        None,
        None,
        "WO-2",
        "WO-2",
    ]
    assert got.column("batch").to_pylist() == [None, None, "B1", "B1", "B1", None, None, None, None]
    # another line's equipment gets nothing from this line
    other = attach_context(samples([OTHER], [ts[3]]), store)
    assert other.column("work_order").to_pylist() == [None]


def test_equipment_scope_overrides_line_and_shift_from_site() -> None:
    store = MesContextStore()
    store.apply(event("shift_change", 0, scope="acme/plant1", shift="A"))
    store.apply(event("product", 0, product="LINE-P"))
    store.apply(event("product", 5, scope=EQ2, product="EQ-P"))
    t = event("product", 10, product="x").ts_us
    got = attach_context(samples([EQ1, EQ2, OTHER], [t, t, t]), store)
    assert got.column("product").to_pylist() == ["LINE-P", "EQ-P", None]
    assert got.column("shift").to_pylist() == ["A", "A", "A"]
    assert store.context_at(EQ2, t)["product"] == "EQ-P"
    assert LINE in store.scopes("product")


def test_feature_windows_and_insights_join_on_window_end() -> None:
    store = MesContextStore()
    store.apply(event("work_order_started", 10, work_order="WO-1", batch="B1"))
    t_in, t_out = event("batch", 12, batch="x").ts_us, event("batch", 8, batch="x").ts_us
    feats = pa.RecordBatch.from_pydict(
        {
            "window_start": pa.array([t_out - 1, t_in - 1], pa.timestamp("us", tz="UTC")),
            "window_end": pa.array([t_out, t_in], pa.timestamp("us", tz="UTC")),
            "asset": pa.array([EQ1, EQ1]).dictionary_encode(),
        }
    )
    got = attach_context(feats, store, ts_column="window_end")
    assert got.column("work_order").to_pylist() == [None, "WO-1"]
    rows = [
        {
            "insight_id": str(n),
            "ts": t,
            "asset": EQ1,
            "model": "m",
            "model_version": "1",
            "model_sha256": "",
            "score": 1.0,
            "threshold": 2.0,
            "severity": "info",
            "window_start": t - 5,
            "window_end": t,
            "context": '{"note": 1}',
            "quality_flags": 0,
            "gated": False,
        }
        for n, t in enumerate([t_out, t_in])
    ]
    ins = attach_insight_context(batch_from_rows(rows, INSIGHTS), store)
    import orjson

    ctx = [orjson.loads(c) for c in ins.column("context").to_pylist()]
    assert ctx[0] == {"note": 1, "work_order": None, "product": None, "batch": None, "shift": None}
    assert ctx[1]["work_order"] == "WO-1" and ctx[1]["batch"] == "B1" and ctx[1]["note"] == 1


def test_large_batch_matches_reference_on_a_sample() -> None:
    """Parallel chunks (n >= 65536, last chunk partial): codes and validity bitmaps stitched right."""
    rng = np.random.default_rng(7)
    store = MesContextStore()
    lines = [f"e/s/a/l{i}" for i in range(20)]
    for i in range(2000):
        store.set_value(lines[i % 20], "work_order", int(rng.integers(0, 10_000_000)), f"WO{i}", f"e{i}")
        if i % 7 == 0:
            store.set_value(lines[i % 20], "work_order", int(rng.integers(0, 10_000_000)), None, f"c{i}")
    n = 200_003
    assets = [f"{lines[i % 20]}/c/eq{i % 3}" if i % 101 else "elsewhere/x" for i in range(n)]
    ts = np.sort(rng.integers(-1000, 10_001_000, size=n))
    ts[n // 2 : n // 2 + 1000] = ts[n // 2 : n // 2 + 1000][::-1].copy()  # some rows back in time
    batch = pa.RecordBatch.from_pydict(
        {
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "asset": pa.array(assets).dictionary_encode(),
        }
    )
    col = context_columns(batch, store, keys=["work_order"])["work_order"]
    col.validate(full=True)
    got = col.to_pylist()
    assert col.null_count == sum(v is None for v in got)
    pick = np.concatenate(
        [
            rng.choice(n, 600, replace=False),
            np.arange(n - 20, n),
            np.arange(66_660, 66_680),
            np.arange(n // 2, n // 2 + 40),
        ]
    )
    ivs = store.intervals(key="work_order")
    want = reference(ivs, [assets[i] for i in pick], [int(ts[i]) for i in pick])["work_order"]
    assert [got[i] for i in pick] == want
    assert 0 < col.null_count < n
