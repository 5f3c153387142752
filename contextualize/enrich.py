"""Contextualize a samples batch: asset, measure and canonical unit from the tag map, values converted.

::

    ctx = Contextualizer(AssetModel.from_settings(cfg.assets), unmapped=cfg.quality.unmapped,
                         context_join=mes_join)          # optional: fills work_order, product, batch, shift
    out, dead = ctx.enrich(samples)                       # CONTEXTUALIZED_SAMPLES, DEAD_LETTERS

Everything is column-wise: the batch's tag dictionary (a few distinct tags) is looked up in the tag map once,
then every per-row column is one ``take`` of a small table, and values are converted with one affine map per
row (numpy). No Python runs per row.

* Mapped tags: ``asset`` (UNS path), ``measure``, ``unit`` (the measure's canonical unit) are set and
  ``value`` is converted to that unit; values outside the tag's valid range get ``QualityFlag.OUT_OF_RANGE``
  (when ``assets.check_range``; the flag is idempotent, so an ingest gate may set it as well).
* Unmapped tags: ``unmapped="keep"`` keeps them with null asset/measure/unit, the value unchanged and
  ``QualityFlag.UNMAPPED`` set; ``"dead_letter"`` moves them to the dead-letters batch (reason
  ``unmapped_tag``). Either way they are counted (:attr:`Contextualizer.unmapped_by_tag`).
* The MES columns (``work_order``, ``product``, ``batch``, ``shift``) are null here; ``context_join``
  (if given) is applied last and fills them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from contextualize.assets import AssetModel
from contextualize.settings import AssetSettings
from edge.core.datamodel import (
    CONTEXTUALIZED_SAMPLES,
    DEAD_LETTERS,
    DICT_STR,
    QualityFlag,
    empty,
)

ContextJoin = Callable[[pa.RecordBatch], pa.RecordBatch]
Unmapped = Literal["keep", "dead_letter"]
UNMAPPED_REASON = "unmapped_tag"


class Contextualizer:
    def __init__(
        self,
        model: AssetModel,
        unmapped: Unmapped = "keep",
        context_join: ContextJoin | None = None,
        check_range: bool | None = None,
    ) -> None:
        if unmapped not in ("keep", "dead_letter"):
            raise ValueError(f"unmapped must be 'keep' or 'dead_letter', not {unmapped!r}")
        self.model = model
        self.unmapped = unmapped
        self.context_join = context_join
        self.check_range = model.check_range if check_range is None else check_range
        self._t = model.tables
        self.rows_in = 0
        self.rows_out = 0
        self.unmapped_total = 0
        self.unmapped_by_tag: Counter[str] = Counter()
        self.out_of_range_total = 0

    @classmethod
    def from_settings(cls, assets: AssetSettings, unmapped: Unmapped = "keep",
                      context_join: ContextJoin | None = None) -> Contextualizer:
        return cls(AssetModel.from_settings(assets), unmapped=unmapped, context_join=context_join)

    def stats(self) -> dict[str, object]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "unmapped_total": self.unmapped_total,
            "unmapped_by_tag": dict(self.unmapped_by_tag),
            "out_of_range_total": self.out_of_range_total,
        }

    def enrich(self, samples: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        """(contextualized samples, dead letters) for one samples batch."""
        n = samples.num_rows
        self.rows_in += n
        if n == 0:
            return self._finish(empty(CONTEXTUALIZED_SAMPLES)), empty(DEAD_LETTERS)
        t = self._t
        tag = samples.column("tag")
        if not pa.types.is_dictionary(tag.type):
            tag = pc.dictionary_encode(tag)
        dictionary = tag.dictionary.cast(pa.string())
        codes = _np_codes(tag)  # per row: index into this batch's dictionary

        # per dictionary entry: its row in the tag map (len(tags) = the unmapped sentinel)
        sentinel = len(t.tag_names)
        found = pc.index_in(dictionary, value_set=t.tag_names)
        per_entry = found.fill_null(sentinel).to_numpy(zero_copy_only=False).astype(np.int64)
        mapped_entry = per_entry != sentinel
        if mapped_entry.all():  # the usual case: no per-row mask needed
            mapped = np.ones(0, dtype=np.bool_)
            n_unmapped = 0
        else:
            mapped = mapped_entry[codes]
            n_unmapped = n - int(np.count_nonzero(mapped))

        # values, converted to the canonical unit (only the steps some tag of this batch needs)
        value = samples.column("value")
        zero, mul, div = t.zero[per_entry], t.mul[per_entry], t.div[per_entry]
        steps = [(op, arr) for op, arr, neutral in ((np.subtract, zero, 0.0), (np.multiply, mul, 1.0),
                                                    (np.divide, div, 1.0)) if np.any(arr != neutral)]
        v: npt.NDArray[np.float64] | None = None
        if steps:
            v = value.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            for op, arr in steps:
                v = op(v, arr[codes])
            mask = value.is_null().to_numpy(zero_copy_only=False) if value.null_count else None
            out_value = pa.array(v, type=pa.float64(), mask=mask)
        else:
            out_value = value

        flags = samples.column("flags").to_numpy(zero_copy_only=False).astype(np.int32, copy=True)
        lo, hi = t.vmin[per_entry], t.vmax[per_entry]
        if self.check_range and (np.isfinite(lo).any() or np.isfinite(hi).any()):
            if v is None:
                v = value.to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                oor = (v < lo[codes]) | (v > hi[codes])
            flags[oor] |= int(QualityFlag.OUT_OF_RANGE)
            self.out_of_range_total += int(np.count_nonzero(oor))
        if n_unmapped and self.unmapped == "keep":
            flags[~mapped] |= int(QualityFlag.UNMAPPED)

        asset = _dict_column(t.asset_idx[per_entry], t.assets, codes, mapped)
        measure = _dict_column(t.measure_idx[per_entry], t.measures, codes, mapped)
        unit = _dict_column(t.unit_idx[per_entry], t.units, codes, mapped)
        columns: dict[str, pa.Array] = {
            "ts": samples.column("ts"),
            "recv_ts": samples.column("recv_ts"),
            "tag": tag.cast(DICT_STR),
            "value": out_value,
            "quality": samples.column("quality"),
            "flags": pa.array(flags, type=pa.int32()),
            "source": samples.column("source"),
            "asset": asset,
            "measure": measure,
            "unit": unit,
        }
        nulls = pa.nulls(n, DICT_STR)
        arrays = [columns.get(f.name, nulls) for f in CONTEXTUALIZED_SAMPLES]
        arrays = [a if a.type == f.type else a.cast(f.type)
                  for a, f in zip(arrays, CONTEXTUALIZED_SAMPLES, strict=True)]
        out = pa.RecordBatch.from_arrays(arrays, schema=CONTEXTUALIZED_SAMPLES)

        dead = empty(DEAD_LETTERS)
        if n_unmapped:
            self.unmapped_total += n_unmapped
            per_code = np.bincount(codes[~mapped], minlength=len(dictionary))
            for code in np.flatnonzero(per_code):
                self.unmapped_by_tag[str(dictionary[int(code)].as_py())] += int(per_code[code])
            if self.unmapped == "dead_letter":
                mask_arr = pa.array(mapped)
                dead = _dead_letters(samples.filter(pc.invert(mask_arr)), tag.filter(pc.invert(mask_arr)))
                out = out.filter(mask_arr)
        self.rows_out += out.num_rows
        return self._finish(out), dead

    def _finish(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return self.context_join(batch) if self.context_join is not None else batch


def _np_codes(tag: pa.DictionaryArray) -> npt.NDArray[np.int32]:
    idx = tag.indices
    if idx.null_count:
        raise ValueError("samples batch has null tags")
    if idx.type != pa.int32():
        idx = idx.cast(pa.int32())
    return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int32)  # zero copy for int32 indices


def _dict_column(
    per_entry_idx: npt.NDArray[np.int32],
    dictionary: pa.Array,
    codes: npt.NDArray[np.int32],
    mapped: npt.NDArray[np.bool_],
) -> pa.DictionaryArray:
    """A dictionary column holding only the entries this batch uses (a compact dictionary per batch)."""
    used = np.unique(per_entry_idx[per_entry_idx >= 0])
    local = np.full(len(dictionary) + 1, -1, dtype=np.int32)
    local[used] = np.arange(len(used), dtype=np.int32)
    per_entry_local = local[per_entry_idx]  # -1 (sentinel) stays -1 through local[-1]
    rows = per_entry_local[codes]
    # ``mapped`` is empty when every row is mapped
    indices = pa.array(rows, type=pa.int32(), mask=~mapped if mapped.size and not mapped.all() else None)
    return pa.DictionaryArray.from_arrays(indices, dictionary.take(pa.array(used, type=pa.int64())))


def _dead_letters(rows: pa.RecordBatch, tag: pa.DictionaryArray) -> pa.RecordBatch:
    n = rows.num_rows
    value = rows.column("value")
    finite = pc.is_finite(value)
    value_txt = pc.if_else(finite, pc.cast(value, pa.string()), pa.scalar(None, pa.string()))
    detail = pc.binary_join_element_wise(
        pa.scalar('{"value": '),
        value_txt,
        pa.scalar(', "quality": '),
        pc.cast(rows.column("quality"), pa.string()),
        pa.scalar("}"),
        "",
        null_handling="replace",
        null_replacement="null",
    )
    reason = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([UNMAPPED_REASON], type=pa.string())
    )
    return pa.RecordBatch.from_arrays(
        [
            rows.column("ts"),
            rows.column("source").cast(DICT_STR),
            tag.cast(pa.string()),
            reason.cast(DICT_STR),
            detail,
            pa.nulls(n, pa.binary()),
        ],
        schema=DEAD_LETTERS,
    )

