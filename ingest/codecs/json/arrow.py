"""The Arrow JSON variant (``arrow_json=True``): the batched payloads of a decode call read by
``pyarrow.json`` at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from edge.core.datamodel import TS
from ingest.codecs import Decoded, RawMessage
from ingest.codecs.json.paths import Getter
from ingest.codecs.json.timestamps import TsFormat, cast_iso, epoch_to_us, ts_of
from ingest.codecs.json.typed import Paths
from ingest.codecs.json.values import quality_array
from ingest.deadletter import Reason


class PerMessageCodec(Paths, Protocol):
    """What the Arrow path uses of ``JsonCodec``: its paths and getters, its tags, its per-message path."""

    ts_format: TsFormat
    _get_ts: Getter | None
    _get_samples: Getter | None

    def _topic_vars(self, topic: str) -> tuple[dict[str, str], str | None]: ...

    def decode_objects(self, messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None: ...

class NotFast(Exception):
    """The Arrow path cannot take this decode call; the per-message path does."""


_TS_TYPES = {"timestamp": TS, "string": pa.string(), "int": pa.int64(), "float": pa.float64()}


class ArrowBatched:
    """Batched payloads (``samples_path`` set): all messages of a decode call parsed by ``pyarrow.json``.

    The payloads are joined newline-delimited and read in one C++ call with an explicit schema (value float64,
    quality int64; the timestamp as ``timestamp[us, UTC]``, parsed by the reader, or, once the reader rejected
    one, as strings cast afterwards with per-element dead letters, or as epoch numbers int64/float64: learned
    from the first sample after a failure), the list of samples is flattened with ``list_flatten`` and
    ``list_parent_indices`` maps each sample back to its message (tag, dead letters). Equivalence with the
    per-message path: a message with anything the schema cannot hold (a missing value or timestamp, a null
    list, NaN) goes to the per-message path, alone; if Arrow rejects the input at all (a numeric string, a
    boolean value, a wrong shape, bad JSON), the whole call goes to the per-message path, and after repeated
    failures the Arrow path is skipped for up to 63 calls. Payloads that are not plain ASCII, contain a line
    break or do not start with ``{`` always take the per-message path (Arrow splits lines and does not
    validate UTF-8 the way orjson does). Not used (``usable`` False) with ``tag_path`` or list indices in a
    path.
    """

    MAX_FAILS = 7

    def __init__(self, codec: PerMessageCodec, threads: bool) -> None:
        self.codec = codec
        self.threads = threads
        self.usable = False
        self.ts_kind = "int" if codec.ts_format.startswith("epoch") else "timestamp"
        self._fails = 0
        self._skip = 0
        self.arrow_calls = 0  # decode calls that went through pyarrow.json (counters for tests and benches)
        self.fallback_calls = 0  # decode calls Arrow rejected or skipped (all per-message)
        self._options: dict[str, pajson.ParseOptions] = {}
        if codec.samples_path is None or codec.tag_path is not None:
            return

        def split(path: str) -> list[str]:
            return [p for p in path.split(".") if p != ""]

        self.samples_parts = split(codec.samples_path)
        self.fields: dict[str, list[str]] = {"value": split(codec.value_path)}
        if codec.ts_path:
            self.fields["ts"] = split(codec.ts_path)
        if codec.quality_path:
            self.fields["quality"] = split(codec.quality_path)
        paths = [self.samples_parts, *self.fields.values()]
        if any(not parts or any(p.lstrip("-").isdigit() for p in parts) for parts in paths):
            return  # list indices or the whole object: per-message path
        inner = list(self.fields.values())
        if any(a is not b and b[: len(a)] == a for a in inner for b in inner):
            return
        self.usable = True

    def _parse_options(self) -> pajson.ParseOptions:
        opts = self._options.get(self.ts_kind)
        if opts is None:
            types = {"value": pa.float64(), "ts": _TS_TYPES[self.ts_kind], "quality": pa.int64()}
            tree: dict[str, Any] = {}
            for name, parts in self.fields.items():
                node = tree
                for p in parts[:-1]:
                    node = node.setdefault(p, {})
                node[parts[-1]] = types[name]

            def build(node: dict[str, Any]) -> pa.DataType:
                return pa.struct([(k, build(v) if isinstance(v, dict) else v) for k, v in node.items()])

            t: pa.DataType = pa.list_(build(tree))
            for p in reversed(self.samples_parts[1:]):
                t = pa.struct([(p, t)])
            schema = pa.schema([(self.samples_parts[0], t)])
            opts = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
            self._options[self.ts_kind] = opts
        return opts

    def decode(self, messages: Sequence[RawMessage], recv_us: int, out: Decoded) -> None:
        codec = self.codec
        if self._skip > 0:
            self._skip -= 1
            self.fallback_calls += 1
            codec.decode_objects(messages, recv_us, out)
            return
        fast: list[int] = []
        tags: list[str] = []
        slow: list[RawMessage] = []
        for i, (topic, payload) in enumerate(messages):
            try:
                tag = codec._topic_vars(topic)[1]
            except (LookupError, ValueError, IndexError):
                slow.append(messages[i])  # dead-lettered there
                continue
            if (tag is not None and payload[:1] == b"{" and b"\n" not in payload and b"\r" not in payload
                    and payload.isascii()):
                fast.append(i)
                tags.append(tag)
            else:
                slow.append(messages[i])
        if len(fast) < 2:
            codec.decode_objects(messages, recv_us, out)
            return
        payloads = [messages[i][1] for i in fast]
        joined = b"\n".join(payloads)
        try:
            table = pajson.read_json(
                pa.BufferReader(joined),
                read_options=pajson.ReadOptions(use_threads=self.threads,
                                                block_size=self._block_size(payloads)),
                parse_options=self._parse_options(),
            )
            if table.num_rows != len(fast):
                raise NotFast("row count")
            bad_msg = self._add(table, tags, payloads, recv_us, out)
        except (NotFast, pa.ArrowException, ValueError, TypeError, OverflowError, FloatingPointError):
            self._failed(messages)
            self.fallback_calls += 1
            codec.decode_objects(messages, recv_us, out)
            return
        self._fails = 0
        self.arrow_calls += 1
        slow.extend(messages[fast[j]] for j in np.flatnonzero(bad_msg))
        if slow:
            codec.decode_objects(slow, recv_us, out)

    def _block_size(self, payloads: list[bytes]) -> int:
        """Blocks of about 128 kB when threaded (4-8 blocks a call in parallel), else one block."""
        longest = max(map(len, payloads)) + 1  # a block must hold a whole line
        total = sum(map(len, payloads)) + len(payloads)
        return max(longest, 1 << 17 if self.threads else total)

    def _add(self, table: pa.Table, tags: list[str], payloads: list[bytes], recv_us: int,
             out: Decoded) -> np.ndarray:
        """Adds the samples of the good messages; returns which messages need the per-message path."""
        lists: Any = table.column(0).combine_chunks()
        for p in self.samples_parts[1:]:
            lists = pc.struct_field(lists, p)
        bad_msg: np.ndarray = ~lists.is_valid().to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(lists)
        owner = pc.list_parent_indices(lists).to_numpy()
        if len(owner) != len(flat):
            raise NotFast("list shape")

        def field(name: str) -> Any:
            a: Any = flat
            for p in self.fields[name]:
                a = pc.struct_field(a, p)
            return a

        v = field("value")
        values = v.fill_null(0.0).to_numpy(zero_copy_only=False)
        bad_el = v.is_null().to_numpy(zero_copy_only=False) | ~np.isfinite(values)
        t = None
        if "ts" in self.fields:
            t = field("ts")
            bad_el |= t.is_null().to_numpy(zero_copy_only=False)
        if bad_el.any():
            bad_msg[owner[bad_el]] = True
        keep = ~bad_msg[owner]
        all_kept = bool(keep.all())
        if not all_kept:
            owner, values = owner[keep], values[keep]
        n = len(owner)
        if n == 0:
            return bad_msg
        msg_codes = np.array([-1 if bad_msg[j] else out.code(tag) for j, tag in enumerate(tags)],
                             dtype=np.int32)
        codes = msg_codes[owner]
        if "quality" in self.fields:
            q = field("quality").fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            if not all_kept:
                q = q[keep]
            quality = quality_array(q)
        else:
            quality = np.zeros(n, dtype=np.int16)
        ok = None
        fmt = self.codec.ts_format
        if t is None:
            ts = np.full(n, recv_us, dtype=np.int64)
        else:
            if not all_kept:
                t = t.filter(pa.array(keep))
            if self.ts_kind == "timestamp":
                ts = t.cast(pa.int64()).to_numpy(zero_copy_only=False)
            elif self.ts_kind == "string":
                cast = None if fmt.startswith("epoch") else cast_iso(t)
                if cast is None:  # per element, dead-lettering exactly the bad ones
                    ts = np.zeros(n, dtype=np.int64)
                    ok = np.ones(n, dtype=bool)
                    for i, s in enumerate(t.to_pylist()):
                        try:
                            ts[i] = ts_of(s, fmt)
                        except (ValueError, TypeError, OverflowError) as exc:
                            ok[i] = False
                            out.dead.add(recv_us, Reason.BAD_TIMESTAMP, f"timestamp {s!r}: {exc}",
                                         tag=out.tag_names[codes[i]], payload=payloads[owner[i]])
                else:
                    ts = cast
            else:
                if fmt == "iso":
                    raise NotFast("numbers where ISO strings are configured")
                nums = t.to_numpy(zero_copy_only=False)
                if nums.dtype.kind == "f" and not (np.isfinite(nums).all() and (np.abs(nums) < 1e19).all()):
                    raise NotFast("timestamp out of range")
                with np.errstate(over="raise", invalid="raise"):
                    ts = epoch_to_us(nums, fmt)
        flags = np.zeros(n, dtype=np.int32)
        if ok is None:
            out.add(ts, codes, values, quality, flags)
        else:
            out.add(ts[ok], codes[ok], values[ok], quality[ok], flags[ok])
        return bad_msg

    def _failed(self, messages: Sequence[RawMessage]) -> None:
        """Back off (0, 1, 3, .. 63 calls) and learn what the timestamps look like."""
        self._fails = min(self._fails + 1, self.MAX_FAILS)
        self._skip = (1 << (self._fails - 1)) - 1
        codec = self.codec
        if codec._get_ts is None or codec._get_samples is None:
            return
        for _, payload in messages[:8]:
            try:
                t = codec._get_ts(codec._get_samples(orjson.loads(payload))[0])
            except (orjson.JSONDecodeError, LookupError, TypeError):
                continue
            if isinstance(t, str):  # parsed by the reader, unless that just failed: then cast (per element)
                epoch = codec.ts_format.startswith("epoch")
                self.ts_kind = "string" if epoch or self.ts_kind == "timestamp" else "timestamp"
            elif isinstance(t, float):
                self.ts_kind = "float"
            elif isinstance(t, int) and not isinstance(t, bool) and -(2**63) <= t < 2**63:
                self.ts_kind = "int"
            else:
                continue
            return
