"""Typed decoding with msgspec, for codecs whose configured paths are all single keys."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Protocol

import msgspec


class Paths(Protocol):
    """Where a codec finds the fields of a message (``JsonCodec``'s paths)."""

    value_path: str
    ts_path: str | None
    quality_path: str | None
    samples_path: str | None
    tag_path: str | None

_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]  # wider: orjson's path decides
_TYPED_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)


class TypedMessages:
    """msgspec decoding of messages whose configured paths are single keys, straight into structs.

    ``fields(payload, recv_us)`` gives the message's values, timestamps and qualities as lists, or None when
    the message does not fit the types; the codec then parses it with orjson and takes its general path. The
    types are chosen so that whatever fits gives what the orjson path gives: values are numbers (made floats,
    as numpy would), timestamps strings or numbers with integers within int64, qualities integers within int64
    (missing: 0); anything else (booleans, nulls, strings where numbers go, larger integers) does not fit.
    """

    def __init__(self, decoder: msgspec.json.Decoder[Any], batched: bool, has_ts: bool,
                 has_quality: bool) -> None:
        self._decode = decoder.decode
        self._batched = batched
        self._get_v = operator.attrgetter("v")
        self._get_t = operator.attrgetter("t") if has_ts else None
        self._get_q = operator.attrgetter("q") if has_quality else None

    @classmethod
    def build(cls, codec: Paths) -> TypedMessages | None:
        """The typed decoder for ``codec``'s paths, or None where a path is not a single key."""
        keys = [codec.value_path, codec.ts_path, codec.quality_path, codec.samples_path]
        plain = [k for k in keys if k is not None]
        if codec.tag_path is not None or any(not k or "." in k or k.lstrip("-").isdigit() for k in plain) \
                or len(set(plain)) != len(plain):
            return None
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [("v", float)]
        rename = {"v": codec.value_path}
        if codec.ts_path is not None:
            fields.append(("t", str | _Int64 | float))
            rename["t"] = codec.ts_path
        if codec.quality_path is not None:
            fields.append(("q", _Int64, 0))
            rename["q"] = codec.quality_path
        sample = msgspec.defstruct("TypedSample", fields, rename=rename, gc=False, kw_only=True)
        if codec.samples_path is None:
            return cls(msgspec.json.Decoder(sample), False, codec.ts_path is not None,
                       codec.quality_path is not None)
        message = msgspec.defstruct("TypedMessage", [("s", list[sample])],  # type: ignore[valid-type]
                                    rename={"s": codec.samples_path}, gc=False)
        return cls(msgspec.json.Decoder(message), True, codec.ts_path is not None,
                   codec.quality_path is not None)

    def fields(self, payload: bytes, recv_us: int) -> tuple[list[Any], list[Any], list[Any]] | None:
        try:
            obj = self._decode(payload)
        except _TYPED_ERRORS:
            return None
        samples = obj.s if self._batched else [obj]
        n = len(samples)
        get_t, get_q = self._get_t, self._get_q
        return (list(map(self._get_v, samples)),
                list(map(get_t, samples)) if get_t is not None else [recv_us] * n,
                list(map(get_q, samples)) if get_q is not None else [0] * n)
