"""Throughput of contextualize.enrich.Contextualizer on the demo plant's tag map.

    .venv/bin/python bench/bench_enrich.py [--rows 1000000] [--tags 24] [--repeat 5]

Builds one samples batch of ROWS rows over the demo box's 24 mapped tags (degF, kPa and psi among them, so
values are converted) plus 2 unmapped tags, or over TAGS synthetic tags when --tags is larger, and reports
the best of REPEAT runs in samples/s next to the 1M samples/s target, with the ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from contextualize.assets import AssetModel
from contextualize.enrich import Contextualizer
from contextualize.settings import AssetSettings
from edge.app.config import load_config
from edge.core.datamodel import samples_from_arrays

TARGET = 1_000_000.0
REPO = Path(__file__).resolve().parents[1]


def synthetic_model(n_tags: int) -> AssetModel:
    units = [("vibration", "mm/s"), ("temperature", "degF"), ("current", "A"), ("pressure", "kPa")]
    equipment = {f"a/l{i // 400}/c{i // 4 % 100}/m{i // 4}": {} for i in range(0, n_tags, 4)}
    tags = {}
    for i in range(n_tags):
        measure, unit = units[i % 4]
        tags[f"t{i}"] = {"asset": f"a/l{i // 400}/c{i // 4 % 100}/m{i // 4}", "measure": measure,
                         "unit": unit, "min": -1e9, "max": 1e9}
    return AssetModel.from_settings(AssetSettings.model_validate(
        {"enterprise": "e", "site": "s", "equipment": equipment, "tags": tags}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tags", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if args.tags == 24:
        model = AssetModel.from_settings(load_config(REPO / "firmware-config", "demo-box").config.assets)
    else:
        model = synthetic_model(args.tags)
    names = [*model.tags, "unmapped.a", "unmapped.b"]
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(names), args.rows).astype(np.int32)
    tags = pa.DictionaryArray.from_arrays(pa.array(idx), pa.array(names))
    batch = samples_from_arrays(np.arange(args.rows, dtype=np.int64), tags, rng.uniform(0, 100, args.rows),
                                source="bench")
    ctx = Contextualizer(model, unmapped="keep")
    ctx.enrich(batch)  # warm up
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ctx.enrich(batch)
        best = min(best, time.perf_counter() - t0)
    rate = args.rows / best
    print(f"enrich: {args.rows} rows, {len(model.tags)} mapped tags: {best * 1e3:.1f} ms, "
          f"{rate / 1e6:.1f}M samples/s; target {TARGET / 1e6:.0f}M samples/s; ratio {rate / TARGET:.1f}x")


if __name__ == "__main__":
    main()
