"""JSON <-> the dataclasses of :mod:`plugins.webapi.types`, with Go's encoding/json rules.

mox decodes requests with Go's ``encoding/json`` (unknown fields rejected),
so clients rely on its behaviour: keys match field names case-insensitively,
only the first JSON value is read (trailing data is ignored), ``null``
leaves a field at its zero value, numbers must fit the field's type, and
times are RFC 3339 strings. Encoding writes compact JSON in declaration
order, nil slices and maps as ``[]``/``{}``, pointers as ``null``, times as
RFC 3339 with the fraction trimmed, and no HTML escaping.

The codec is driven by the type hints of the dataclasses, so one definition
serves the server, the client and the OpenAPI description.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

from core.gofmt import format_go_time

__all__ = [
    "DecodeError",
    "decode_request",
    "decode_value",
    "encode",
    "encode_bytes",
    "to_jsonable",
    "format_time",
    "parse_time",
    "type_hints",
    "go_type_name",
]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class DecodeError(ValueError):
    """A request that does not decode; the text is what the client sees after ``parsing request: ``."""


@cache
def type_hints(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass (cached: the hot path decodes every request)."""
    return typing.get_type_hints(cls)


@cache
def _field_names(cls: type) -> tuple[tuple[str, ...], dict[str, str]]:
    names = tuple(f.name for f in dataclasses.fields(cls))
    return names, {n.lower(): n for n in names}


def optional_inner(tp: Any) -> Any | None:
    """``T`` for ``T | None``, else None."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def go_type_name(tp: Any) -> str:
    """How Go would name the type in an error message (``int64``, ``[]string``, ``time.Time``)."""
    inner = optional_inner(tp)
    if inner is not None:
        return "*" + go_type_name(inner)
    if tp is bool:
        return "bool"
    if tp is int:
        return "int64"
    if tp is str:
        return "string"
    if tp is datetime:
        return "time.Time"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        return "[]" + go_type_name(args[0])
    if origin is tuple:
        return f"[{len(args)}]" + go_type_name(args[0])
    if origin is dict:
        return f"map[{go_type_name(args[0])}]{go_type_name(args[1])}"
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return "webapi." + tp.__name__
    return str(tp)


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _clean_str(s: str) -> str:
    # Go replaces invalid UTF-16 surrogate escapes with U+FFFD; Python keeps
    # them, and they would fail later when the text is encoded as UTF-8.
    return _LONE_SURROGATE.sub("\ufffd", s) if _LONE_SURROGATE.search(s) else s


def parse_time(s: str) -> datetime:
    """An RFC 3339 time (as Go's time.Time JSON form); raises ValueError with Go's wording."""
    m = _RFC3339.match(s)
    if m is None:
        raise ValueError(f'parsing time "{s}" as "2006-01-02T15:04:05Z07:00": cannot parse')
    year, month, day, hour, minute, sec = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    zone = m.group(8)
    if zone == "Z":
        tz: timezone = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f'parsing time "{s}": time zone offset out of range')
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(year, month, day, hour, minute, sec, micro, tzinfo=tz)
    except ValueError as exc:
        raise ValueError(f'parsing time "{s}": {exc}') from None


#: Go's time.Time JSON form; one implementation for every Go-compatible text.
format_time = format_go_time


def _mismatch(v: Any, tp: Any, where: str) -> DecodeError:
    kind = _json_kind(v)
    if kind == "number":
        kind = f"number {json.dumps(v)}"
    return DecodeError(f"json: cannot unmarshal {kind} into Go {where} of type {go_type_name(tp)}")


def decode_value(v: Any, tp: Any, where: str = "value", strict: bool = True) -> Any:
    """Convert a decoded JSON value to type ``tp``; ``where`` names the field for errors.

    ``strict=False`` ignores unknown object keys (the client reading results
    from a newer server); the server always decodes strictly.
    """
    return _converter(tp)(v, where, strict)


_Decoder = Callable[[Any, str, bool], Any]


@cache
def _converter(tp: Any) -> _Decoder:
    """The conversion for values of type ``tp``, worked out once per type.

    Every request decodes the same few types: asking ``typing`` what a type
    is (optional? a list of what?) for every value was most of the cost.
    """
    inner = optional_inner(tp)
    if inner is not None:
        inner_dec = _converter(inner)

        def optional(v: Any, where: str, strict: bool) -> Any:
            return None if v is None else inner_dec(v, where, strict)

        return optional
    if tp is Any:
        return lambda v, where, strict: v
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        cls: type = tp

        def struct(v: Any, where: str, strict: bool) -> Any:
            if v is None:
                return zero_instance(cls)
            if not isinstance(v, dict):
                raise _mismatch(v, cls, where)
            return _decode_struct(v, cls, strict)

        return struct
    if tp is bool:
        return _decode_bool
    if tp is int:
        return _decode_int
    if tp is str:
        return _decode_str
    if tp is datetime:
        return _decode_time
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        elem = _converter(args[0])

        def list_(v: Any, where: str, strict: bool) -> Any:
            if v is None:
                return []
            if not isinstance(v, list):
                raise _mismatch(v, tp, where)
            return [elem(x, where, strict) for x in v]

        return list_
    if origin is tuple:
        elems = [_converter(a) for a in args]

        def tuple_(v: Any, where: str, strict: bool) -> Any:
            # A Go array: extra elements are dropped, missing ones are zero.
            if v is None:
                return tuple(d(None, where, True) for d in elems)
            if not isinstance(v, list):
                raise _mismatch(v, tp, where)
            return tuple(d(v[i] if i < len(v) else None, where, True) for i, d in enumerate(elems))

        return tuple_
    if origin is dict:
        value_dec = _converter(args[1])

        def dict_(v: Any, where: str, strict: bool) -> Any:
            if v is None:
                return None
            if not isinstance(v, dict):
                raise _mismatch(v, tp, where)
            return {_clean_str(k): value_dec(x, where, strict) for k, x in v.items()}

        return dict_

    def unsupported(v: Any, where: str, strict: bool) -> Any:
        raise TypeError(f"unsupported type {tp!r}")

    return unsupported


def _decode_bool(v: Any, where: str, strict: bool) -> Any:
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _mismatch(v, bool, where)
    return v


def _decode_int(v: Any, where: str, strict: bool) -> Any:
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _mismatch(v, int, where)
    if isinstance(v, float) or not (_INT64_MIN <= v <= _INT64_MAX):
        raise _mismatch(v, int, where)
    return v


def _decode_str(v: Any, where: str, strict: bool) -> Any:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _mismatch(v, str, where)
    return _clean_str(v)


def _decode_time(v: Any, where: str, strict: bool) -> Any:
    if v is None:
        return datetime.min.replace(tzinfo=UTC)
    if not isinstance(v, str):
        raise _mismatch(v, datetime, where)
    try:
        return parse_time(v)
    except ValueError as exc:
        raise DecodeError(str(exc)) from None


@dataclasses.dataclass(frozen=True)
class _Struct:
    """How a dataclass decodes: its fields' decoders and what a missing field gets."""

    hints: dict[str, Any]
    lower: dict[str, str]
    #: Field name -> (decoder, the field as errors name it).
    fields: dict[str, tuple[_Decoder, str]]
    #: Fields without a default: (name, decoder giving the zero value).
    zeroed: tuple[tuple[str, _Decoder], ...]


@cache
def _struct(cls: type) -> _Struct:
    hints = type_hints(cls)
    _, lower = _field_names(cls)
    fields = {name: (_converter(tp), f"struct field {cls.__name__}.{name}") for name, tp in hints.items()}
    zeroed = tuple(
        (f.name, _converter(hints[f.name]))
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return _Struct(hints, lower, fields, zeroed)


def _decode_struct(obj: dict[str, Any], cls: type, strict: bool = True) -> Any:
    info = _struct(cls)
    hints, lower, fields = info.hints, info.lower, info.fields
    kwargs: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in hints else lower.get(key.lower())
        if name is None:
            if not strict:
                continue
            raise DecodeError(f'json: unknown field "{_clean_str(key)}"')
        if value is None:
            # Go leaves the field as it was: the zero value.
            kwargs.pop(name, None)
            continue
        dec, where = fields[name]
        kwargs[name] = dec(value, where, strict)
    return _zero_fill(cls, info, kwargs)


def zero_instance(cls: type, given: dict[str, Any] | None = None) -> Any:
    """``cls(**given)`` with Go zero values for fields that have no default."""
    return _zero_fill(cls, _struct(cls), dict(given or {}))


def _zero_fill(cls: type, info: _Struct, kwargs: dict[str, Any]) -> Any:
    for name, dec in info.zeroed:
        if name not in kwargs:
            kwargs[name] = dec(None, "value", True)
    return cls(**kwargs)


def _no_constant(name: str) -> Any:
    raise DecodeError(f"invalid character '{name[0]}' looking for beginning of value")


_decoder = json.JSONDecoder(parse_constant=_no_constant)


def _syntax_error(exc: json.JSONDecodeError) -> DecodeError:
    return DecodeError(f"{exc.msg} at offset {exc.pos}")


def decode_request(text: str, cls: type) -> Any:
    """Decode the ``request`` form value into ``cls`` (first JSON value only; ``null`` = zero)."""
    s = text.lstrip(" \t\r\n")
    try:
        value, _ = _decoder.raw_decode(s)
    except json.JSONDecodeError as exc:
        raise _syntax_error(exc) from None
    except (RecursionError, ValueError) as exc:
        if isinstance(exc, DecodeError):
            raise
        if isinstance(exc, ValueError):
            raise DecodeError(str(exc)) from None
        raise DecodeError("exceeded max depth") from None
    if value is None:
        return zero_instance(cls)
    if not isinstance(value, dict):
        raise DecodeError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type {go_type_name(cls)}"
        )
    return _decode_struct(value, cls)


#: Types :func:`to_jsonable` passes through as they are (exact types: a subclass takes the long way).
_SCALARS = frozenset((str, int, bool, float))


@cache
def _encoded_fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's fields in declaration order, with their type hints."""
    hints = type_hints(cls)
    return tuple((f.name, hints.get(f.name)) for f in dataclasses.fields(cls))


def to_jsonable(value: Any, tp: Any = None) -> Any:
    """A dataclass value as plain JSON data: nil slices/maps become ``[]``/``{}``, times strings."""
    if type(value) in _SCALARS:
        return value
    if value is None:
        if tp is not None and optional_inner(tp) is None:
            origin = typing.get_origin(tp)
            if origin is list:
                return []
            if origin is dict:
                return {}
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: to_jsonable(getattr(value, name), hint) for name, hint in _encoded_fields(type(value))}
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, list | tuple):
        args = typing.get_args(tp) if tp is not None else ()
        elem = args[0] if args else None
        return [to_jsonable(x, elem) for x in value]
    if isinstance(value, dict):
        args = typing.get_args(optional_inner(tp) or tp) if tp is not None else ()
        elem = args[1] if len(args) == 2 else None
        return {k: to_jsonable(x, elem) for k, x in value.items()}
    return value


def encode(value: Any) -> str:
    """Compact JSON with a trailing newline, as Go's json.Encoder with HTML escaping off."""
    s = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    # Text from a request (an error naming a field) may hold lone surrogates,
    # which cannot be UTF-8: U+FFFD as Go writes them.
    s = _clean_str(s)
    # Go escapes these two even without HTML escaping (they end JavaScript lines).
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    # Text quoted from a request (a field name in an error message) may
    # hold a lone surrogate, which has no UTF-8 form: U+FFFD, as Go writes.
    return _clean_str(s) + "\n"


def encode_bytes(value: Any) -> bytes:
    return encode(value).encode("utf-8")
