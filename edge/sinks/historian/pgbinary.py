"""Arrow columns to PostgreSQL binary COPY, vectorised with numpy (no Python work per row).

The binary COPY stream is a header, then per row an int16 field count and per field an int32 length (-1
for NULL) followed by the value's bytes, then an int16 -1 trailer.

How it is built: every column gets a fixed-width *slot* in an (n rows x W bytes) matrix, as wide as its
widest cell (length prefix + value). Slots are filled column by column with 2-D slab copies; a column whose
cells are narrower than its slot in some rows (text, NULLs) marks its padding in a boolean mask, and one
``matrix[mask]`` compacts everything into the COPY stream in row order. Dictionary text columns encode
each distinct value once and take rows from that small table.

Types: timestamptz (Arrow timestamp, any unit; written as microseconds since 2000-01-01), float8, int2,
int4, int8, bool, text (string / large_string / dictionary of strings), bytea (binary) and jsonb (text with
the jsonb version byte). Values are written as given; the table's column types must match.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in microseconds since 1970

FIXED: dict[str, str] = {"timestamptz": ">i8", "float8": ">f8", "int2": ">i2", "int4": ">i4", "int8": ">i8",
                         "bool": "u1"}
VARIABLE = ("text", "bytea", "jsonb")
CHUNK_ROWS = 32_768  # rows encoded at a time (cache-sized matrix; lets COPY stream while encoding)
MAX_PADDING_BYTES = 256 << 20  # a text column padded to its longest value may not exceed this

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
NULL_CELL = np.frombuffer(b"\xff\xff\xff\xff", np.uint8)


class EncodeError(ValueError):
    """A column whose Arrow type cannot be written as the PostgreSQL type asked for."""


class PaddingTooLarge(EncodeError):
    """A text/bytea column whose longest value would make the padded matrix too big (use INSERT)."""


def _be(values: npt.NDArray[Any], dtype: str) -> U8:
    arr = np.asarray(values).astype(dtype)
    return arr.view(np.uint8).reshape(len(arr), arr.dtype.itemsize)


def _fixed_values(arr: pa.Array, pg_type: str) -> npt.NDArray[Any]:
    """Values of a non-dictionary Arrow array as numpy, in the big-endian layout of ``pg_type``."""
    t = arr.type
    if pg_type == "timestamptz":
        if not pa.types.is_timestamp(t):
            raise EncodeError(f"timestamptz needs an Arrow timestamp, got {t}")
        if t.unit != "us":
            arr = pc.cast(arr, pa.timestamp("us", tz=t.tz))
        raw = arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        out: npt.NDArray[Any] = (raw - PG_EPOCH_US).astype(">i8")
        return out
    if pg_type == "bool":
        if not pa.types.is_boolean(t):
            raise EncodeError(f"bool needs an Arrow boolean, got {t}")
        return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint8)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        raise EncodeError(f"{pg_type} needs an Arrow number, got {t}")
    filled = arr.fill_null(0) if arr.null_count else arr
    return np.asarray(filled.to_numpy(zero_copy_only=False)).astype(FIXED[pg_type])


def _valid(arr: pa.Array) -> npt.NDArray[np.bool_] | None:
    if not arr.null_count:
        return None
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _padded_strings(arr: pa.Array, prefix: bytes) -> tuple[U8, I64]:
    """(m x w) padded cells ``len | prefix | bytes`` of a plain string/binary array, and cell lengths."""
    t = arr.type
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        arr = arr.cast(pa.string() if pa.types.is_large_string(t) else pa.binary())
        t = arr.type
    if not (pa.types.is_string(t) or pa.types.is_binary(t)):
        raise EncodeError(f"text/bytea/jsonb needs an Arrow string or binary column, got {t}")
    m = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=m + 1,
                            offset=arr.offset * 4).astype(np.int64)
    vbuf = arr.buffers()[2]
    values = np.frombuffer(vbuf, dtype=np.uint8) if vbuf is not None and vbuf.size else np.zeros(1, np.uint8)
    vlen = np.diff(offsets)
    valid = _valid(arr)
    if valid is not None:
        vlen = np.where(valid, vlen, 0)
    maxlen = int(vlen.max()) if m else 0
    plen = len(prefix)
    width = 4 + plen + maxlen
    if m * width > MAX_PADDING_BYTES and m * width > 8 * int(vlen.sum() + m * (4 + plen)):
        raise PaddingTooLarge(f"a value of {maxlen} bytes among {m} rows")
    cells = np.zeros((m, width), dtype=np.uint8)
    payload = vlen + plen
    cells[:, :4] = _be(np.where(valid, payload, -1) if valid is not None else payload, ">i4")
    if plen:
        cells[:, 4] = prefix[0]
    if maxlen:
        cols = np.arange(maxlen, dtype=np.int64)
        inside = cols[None, :] < vlen[:, None]
        src = np.minimum(offsets[:-1, None] + cols[None, :], len(values) - 1)
        cells[:, 4 + plen:] = np.where(inside, values[src], 0)
    lengths = 4 + payload
    if valid is not None:
        lengths = np.where(valid, lengths, 4)
    return cells, lengths.astype(np.int64)


class Slot:
    """One column's place in the row matrix: a width, and a fill that returns per-row cell lengths (None:
    every cell is exactly ``width`` bytes)."""

    def __init__(self, arr: pa.Array | None, pg_type: str, n: int) -> None:
        self.n = n
        self.pg_type = pg_type
        self.table: U8 | None = None  # dictionary: cells of the distinct values
        self.table_len: I64 | None = None
        self.indices: npt.NDArray[np.int64] | None = None
        self.valid: npt.NDArray[np.bool_] | None = None
        self.values: U8 | None = None  # fixed: (n, w) big-endian
        self.cells: U8 | None = None  # plain strings: (n, width) padded cells
        self.lengths: I64 | None = None
        self._constant: bool | None = None
        if arr is None:
            self.kind = "null"
            self.width = 4
            return
        if pg_type in VARIABLE:
            prefix = b"\x01" if pg_type == "jsonb" else b""
            if pg_type == "bytea" and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                arr = arr.cast(pa.binary())
            if pa.types.is_dictionary(arr.type):
                self.kind = "dict"
                dictionary = arr.dictionary
                if pg_type == "bytea" and pa.types.is_string(dictionary.type):
                    dictionary = dictionary.cast(pa.binary())
                table, table_len = _padded_strings(dictionary, prefix)
                # one extra row: the NULL cell
                self.table = np.vstack([table, np.zeros((1, table.shape[1]), np.uint8)]) if len(table) \
                    else np.zeros((1, 4), np.uint8)
                self.table[-1, :4] = NULL_CELL
                self.table_len = np.append(table_len, 4).astype(np.int64)
                idx = np.asarray(arr.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
                idx[idx < 0] = len(self.table) - 1
                self.indices = idx
                self.width = int(self.table.shape[1])
            else:
                self.kind = "plain"
                self.cells, self.lengths = _padded_strings(arr, prefix)
                self.width = int(self.cells.shape[1])
            return
        if pg_type not in FIXED:
            raise EncodeError(f"no binary encoder for PostgreSQL type {pg_type}")
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        self.kind = "fixed"
        vals = _fixed_values(arr, pg_type)
        self.values = vals.view(np.uint8).reshape(n, -1)
        self.valid = _valid(arr)
        self.width = 4 + int(self.values.shape[1])

    def fill(self, dest: U8, a: int, b: int) -> I64 | None:
        """Write the cells of rows [a, b) into ``dest`` ((b - a) x width); return their lengths or None."""
        if self.kind == "null":
            dest[:] = NULL_CELL
            return None
        if self.kind == "fixed":
            assert self.values is not None
            w = self.width - 4
            valid = self.valid[a:b] if self.valid is not None else None
            if valid is None or valid.all():
                dest[:, :4] = np.frombuffer(np.array([w], dtype=">i4").tobytes(), np.uint8)
                dest[:, 4:] = self.values[a:b]
                return None
            dest[:, :4] = _be(np.where(valid, w, -1), ">i4")
            dest[:, 4:] = self.values[a:b]
            return np.where(valid, self.width, 4).astype(np.int64)
        if self.kind == "dict":
            assert self.table is not None and self.table_len is not None and self.indices is not None
            idx = self.indices[a:b]
            dest[:] = self.table[idx]
            return None if self.constant else self.table_len[idx]
        assert self.cells is not None and self.lengths is not None
        dest[:] = self.cells[a:b]
        return None if self.constant else self.lengths[a:b]

    @property
    def constant(self) -> bool:
        """Every cell of this column is exactly ``width`` bytes."""
        if self._constant is None:
            if self.kind == "dict":
                assert self.table_len is not None and self.indices is not None
                used = np.bincount(self.indices, minlength=len(self.table_len)) > 0
                self._constant = bool((self.table_len[used] == self.width).all())
            elif self.kind == "plain":
                assert self.lengths is not None
                self._constant = bool((self.lengths == self.width).all())
            else:
                self._constant = self.kind == "null" or self.valid is None
        return self._constant


class CopyEncoder:
    """Binary COPY data for ``n`` rows of ``columns`` ((array or None for NULLs, PG type) in table column
    order). The constructor checks every column (raising :class:`EncodeError`); :meth:`chunks` then yields
    the header, row chunks of ``chunk_rows`` rows in row order, and the trailer, each encoded when asked
    for, so a COPY sends one chunk while the server parses the previous one."""

    def __init__(self, columns: list[tuple[pa.Array | pa.ChunkedArray | None, str]], n: int,
                 chunk_rows: int = CHUNK_ROWS) -> None:
        arrays = [(a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a, t) for a, t in columns]
        self.n = n
        self.chunk_rows = max(1, chunk_rows)
        self.slots = [Slot(a, t, n) for a, t in arrays]

    def chunks(self) -> Iterator[memoryview]:
        n, slots = self.n, self.slots
        width = 2 + sum(s.width for s in slots)
        count = np.frombuffer(np.array([len(slots)], dtype=">i2").tobytes(), np.uint8)
        yield memoryview(HEADER)
        rows = min(n, self.chunk_rows)
        matrix = np.empty((rows, width), dtype=np.uint8)
        mask = np.ones((rows, width), dtype=bool)
        variable = any(not s.constant for s in slots)
        for a in range(0, n, self.chunk_rows):
            b = min(n, a + self.chunk_rows)
            m = matrix[: b - a]
            m[:, :2] = count
            off = 2
            for s in slots:
                lengths = s.fill(m[:, off:off + s.width], a, b)
                if variable:
                    if lengths is None:
                        mask[: b - a, off:off + s.width] = True
                    else:
                        np.less(np.arange(s.width, dtype=np.int64)[None, :], lengths[:, None],
                                out=mask[: b - a, off:off + s.width])
                off += s.width
            body = m[mask[: b - a]] if variable else m.reshape(-1).copy()
            yield memoryview(body.data)
        yield memoryview(TRAILER)


def encode_copy(columns: list[tuple[pa.Array | pa.ChunkedArray | None, str]], n: int) -> bytes:
    """The whole binary COPY stream as one bytes object (tests, small batches)."""
    return b"".join(bytes(part) for part in CopyEncoder(columns, n).chunks())
