"""The Arrow columns of insight rows that do not change from tick to tick, and the caches that keep them:
per model the JSON-quoted feature names; per (tracker, model) the asset column, the severity slots and the
context column, reused while the tick's assets and contexts compare equal to the last ones (``Windower``
hands out the same context dict while an equipment's MES context is unchanged, so the compare is by
identity); the constant columns (model, version, sha256, threshold) per row count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from inference.idhash import string_buffers

_DICT_STR = pa.dictionary(pa.int32(), pa.string())


@dataclass
class RowCache:
    """What ``build_insights`` keeps per (tracker, model) between ticks."""

    assets: list[str] | None = None
    slots: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    asset_col: pa.DictionaryArray | None = None
    idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    name_buf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    name_off: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    contexts: list[dict[str, str | None]] | None = None
    context_n: int = -1
    context_col: pa.Array | None = None
    context_texts: dict[int, str] = field(default_factory=dict)  # id of a dict in ``contexts`` -> its JSON


_CACHE_MAX = 256
_NAMES: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
_CONST: dict[tuple[Any, int], pa.Array] = {}


def _feature_fragments(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per feature the JSON text before its value, ``{"feature": <name>, "contribution": `` as (bytes,
    offsets), once per feature list."""
    key = tuple(names)
    got = _NAMES.get(key)
    if got is None:
        if len(_NAMES) >= _CACHE_MAX:
            _NAMES.clear()
        frags = ['{"feature": ' + json.dumps(nm) + ', "contribution": ' for nm in key]
        got = _NAMES[key] = string_buffers(pa.array(frags, type=pa.string()))
    return got


def _const_dict(value: str, n: int) -> pa.Array:
    """A dictionary column holding ``value`` in every row (kept per value and row count)."""
    got = _CONST.get((value, n))
    if got is None:
        if len(_CONST) >= _CACHE_MAX:
            _CONST.clear()
        indices = pa.py_buffer(np.zeros(n, dtype=np.int32))
        got = _CONST[(value, n)] = pa.DictionaryArray.from_buffers(
            _DICT_STR, n, [None, indices], pa.array([value], pa.string())
        )
    return got


def _const_float(value: float, n: int) -> pa.Array:
    key = (("float", value), n)
    got = _CONST.get(key)
    if got is None:
        if len(_CONST) >= _CACHE_MAX:
            _CONST.clear()
        got = _CONST[key] = pa.array(np.full(n, value, dtype=np.float64), type=pa.float64())
    return got


def context_json(context: dict[str, str | None]) -> str:
    return json.dumps({k: v for k, v in sorted(context.items())})


_CONTEXT_TEXT: dict[tuple[tuple[str, str | None], ...], str] = {}
_CONTEXT_TEXT_MAX = 65536


def _context_column(
    contexts: Sequence[dict[str, str | None]], n: int, last: dict[int, str]
) -> tuple[pa.Array, dict[int, str]]:
    """``context_json`` of each row ("{}" past the end of ``contexts``): the text of the last tick for a
    context dict seen then (``last``: by identity; the cache holds those dicts, so their ids stay theirs),
    else kept by its items (each distinct context serialized once). Returns the column and the map for the
    next tick."""
    out: list[str] = []
    seen: dict[int, str] = {}
    for c in contexts[:n]:
        text = last.get(id(c))
        if text is None:
            key = tuple(c.items())
            text = _CONTEXT_TEXT.get(key)
            if text is None:
                if len(_CONTEXT_TEXT) >= _CONTEXT_TEXT_MAX:
                    _CONTEXT_TEXT.clear()
                text = _CONTEXT_TEXT[key] = context_json(c)
        seen[id(c)] = text
        out.append(text)
    out.extend(["{}"] * (n - len(out)))
    return pa.array(out, type=pa.string()), seen
