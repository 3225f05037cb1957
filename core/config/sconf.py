"""Reader and writer for mox's "sconf" config format, driven by dataclasses.

mox's config files are not YAML: indentation is tabs only, values are never
quoted, ``nil`` stands for an empty map element, and every struct key must be
known. Reading them with a YAML library would accept files mox rejects (and
the other way round), so this module implements the format as mox's sconf
package reads and writes it, with the schema coming from dataclass type hints:

* ``str``, ``bool``, ``int``, ``float``, ``bytes`` (base64),
  :class:`datetime.timedelta` (Go duration syntax, kept exact as
  :class:`Duration`),
* ``list[T]``, ``dict[str, T]``, nested dataclasses, and ``T | None`` for
  optional sections (a Go pointer: present means allocated).

Field metadata (see :func:`req` / :func:`opt`) marks optional fields and
carries the documentation text the writer emits as comments.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from core.config.errors import ConfigError
from core.gofmt import format_duration_ns

T = TypeVar("T")

_META_OPTIONAL = "sconf_optional"
_META_DOC = "sconf_doc"
_LINES_ATTR = "_sconf_lines"
_START_ATTR = "_sconf_start"
_NOVALUE: Any = object()


# --- field helpers ---------------------------------------------------------


def _field(optional: bool, doc: str, default: Any, factory: Callable[[], Any] | None) -> Any:
    meta = {_META_OPTIONAL: optional, _META_DOC: doc}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    if default is _NOVALUE:
        raise TypeError("sconf field needs a default or a factory (the zero value)")
    return dataclasses.field(default=default, metadata=meta)


def req(doc: str = "", default: Any = _NOVALUE, *, factory: Callable[[], Any] | None = None) -> Any:
    """A required key: parsing fails with ``missing required key`` without it.

    ``default``/``factory`` give the zero value (used for ``nil`` map values
    and for constructing instances in code).
    """
    return _field(False, doc, default, factory)


def opt(doc: str = "", default: Any = _NOVALUE, *, factory: Callable[[], Any] | None = None) -> Any:
    """An optional key; omitted by the writer when it holds its zero value."""
    return _field(True, doc, default, factory)


def is_optional(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get(_META_OPTIONAL, False))


def field_doc(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get(_META_DOC, ""))


def line_of(obj: Any, key: str | None = None) -> int:
    """Line where ``key`` of a parsed struct was read (or where the struct began).

    Validation uses this to point errors at the offending line; objects built
    in code (not parsed) report line 0.
    """
    if key is not None:
        lines = getattr(obj, _LINES_ATTR, None)
        if lines and key in lines:
            return int(lines[key])
    return int(getattr(obj, _START_ATTR, 0))


# --- Go durations ----------------------------------------------------------

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_DUR_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([a-z\u00b5\u03bc]+)")
_MAX_NS = (1 << 63) - 1


class Duration(datetime.timedelta):
    """A timedelta that remembers Go's nanosecond value.

    mox configs use sub-microsecond durations on purpose (``1ns`` = "keep,
    but clean up immediately"); a plain timedelta would round that to zero,
    which means "don't keep" — the opposite. The timedelta value is rounded
    away from zero to the next microsecond so truthiness and arithmetic stay
    right, while :attr:`nanoseconds` keeps the exact value for writing back.
    """

    __slots__ = ("_ns",)
    _ns: int

    def __new__(cls, nanoseconds: int) -> Duration:
        us, rem = divmod(abs(nanoseconds), 1000)
        if rem:
            us += 1
        self = super().__new__(cls, microseconds=us if nanoseconds >= 0 else -us)
        self._ns = nanoseconds
        return self

    @property
    def nanoseconds(self) -> int:
        return self._ns

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Duration):
            return self._ns == other._ns
        if isinstance(other, datetime.timedelta):
            return duration_ns(other) == self._ns
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self._ns)

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"

    def __reduce__(self) -> Any:
        return (Duration, (self._ns,))


def duration_ns(d: datetime.timedelta) -> int:
    """Total nanoseconds of a timedelta (exact for :class:`Duration`)."""
    if isinstance(d, Duration):
        return d.nanoseconds
    return ((d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds) * 1000


def parse_duration(s: str) -> Duration:
    """Parse Go's ``time.ParseDuration`` syntax (``72h``, ``1h30m``, ``1ns``)."""
    orig = s
    neg = False
    if s[:1] in ("+", "-"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return Duration(0)
    if s == "":
        raise ValueError(f"invalid duration {orig!r}")
    total = 0
    pos = 0
    while pos < len(s):
        m = _DUR_PART.match(s, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"invalid duration {orig!r}")
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if whole == "" and not frac:
            raise ValueError(f"invalid duration {orig!r}")
        if unit not in _UNITS_NS:
            raise ValueError(f"unknown unit {unit!r} in duration {orig!r}")
        mult = _UNITS_NS[unit]
        total += int(whole or "0") * mult
        if frac:
            total += int(frac) * mult // (10 ** len(frac))
        pos = m.end()
    if total > _MAX_NS:
        raise ValueError(f"invalid duration {orig!r}: out of range")
    return Duration(-total if neg else total)


def format_duration(d: datetime.timedelta) -> str:
    """Format like Go's ``time.Duration.String`` (``72h0m0s``, ``1ns``, ``1.5s``)."""
    return format_duration_ns(duration_ns(d))


# --- type introspection ----------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    h = _HINTS.get(cls)
    if h is None:
        h = typing.get_type_hints(cls)
        _HINTS[cls] = h
    return h


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
        raise TypeError(f"unsupported union type {tp!r}")
    return tp, False


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if not f.name.startswith("_")]


def is_zero(value: Any) -> bool:
    """Whether a value is the zero value of its type (Go semantics)."""
    if value is None:
        return True
    if isinstance(value, bool):
        return value is False
    if isinstance(value, datetime.timedelta):
        return duration_ns(value) == 0
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str | bytes | list | dict):
        return len(value) == 0
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hints = _hints(type(value))
        return all(
            _is_zero_typed(getattr(value, f.name), hints[f.name]) for f in _fields(type(value))
        )
    return False


def _is_zero_typed(value: Any, tp: Any) -> bool:
    """Zero test honouring Go pointers: an optional section is zero only if absent."""
    _, pointer = _unwrap_optional(tp)
    if pointer:
        return value is None
    return is_zero(value)


# --- parser ----------------------------------------------------------------

_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


class _Parser:
    """Line reader mirroring sconf's: ``line`` is the unconsumed rest."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.src = text.split("\n")
        if self.src and self.src[-1] == "":
            self.src.pop()
        self.pos = 0
        self.lineno = 0
        self.line = ""
        self.prefix = ""
        self._key_line = 0

    def fail(self, message: str, key: str | None = None, line: int | None = None) -> typing.NoReturn:
        raise ConfigError(self.path, self.lineno if line is None else line, message, key)

    def next(self) -> bool:
        """Whether a line at the current indent (or deeper) is pending."""
        while self.line == "":
            if self.pos >= len(self.src):
                return False
            s = self.src[self.pos]
            self.pos += 1
            self.lineno += 1
            if s.strip().startswith("#"):
                continue
            self.line = s
        return self.line.startswith(self.prefix)

    def consume(self) -> str:
        s = self.line
        self.line = ""
        return s

    def indent(self, key: str | None) -> None:
        self._key_line = self.lineno
        self.prefix += "\t"
        if self.line != "":
            self.fail(f"unexpected value \"{self.line}\" for key \"{key}\": expected nested lines", key)
        if not self.next():
            more = ""
            lead = self.line[: len(self.line) - len(self.line.lstrip(" \t"))]
            if " " in lead:
                more = " (perhaps mixed tab/space indenting)"
            # Point at the key that wanted the block, not at the line after it.
            self.fail(f"expected indented block for key \"{key}\"{more}", key, line=self._key_line)

    def unindent(self) -> None:
        self.prefix = self.prefix[:-1]

    def parse_value(self, tp: Any, key: str) -> Any:
        inner, optional = _unwrap_optional(tp)
        if optional:
            return self.parse_value(inner, key)
        tp = inner
        if tp is datetime.timedelta or tp is Duration:
            s = self.consume()
            try:
                return parse_duration(s)
            except ValueError as e:
                self.fail(f"parsing duration for key \"{key}\": {e}", key)
        if tp is bool:
            s = self.consume()
            if s == "true":
                return True
            if s == "false":
                return False
            self.fail(f"bad boolean value \"{s}\" for key \"{key}\"", key)
        if tp is int:
            s = self.consume()
            if not _INT_RE.match(s):
                self.fail(f"parsing integer for key \"{key}\": invalid syntax \"{s}\"", key)
            return int(s)
        if tp is float:
            s = self.consume()
            low = s.lower().lstrip("+-")
            if _FLOAT_RE.match(s) or low in ("inf", "infinity", "nan"):
                return float(s)
            self.fail(f"parsing float for key \"{key}\": invalid syntax \"{s}\"", key)
        if tp is str:
            return self.consume()
        if tp is bytes:
            s = self.consume()
            try:
                return base64.b64decode(s, validate=True)
            except (binascii.Error, ValueError) as e:
                self.fail(f"parsing base64 for key \"{key}\": {e}", key)
        origin = typing.get_origin(tp)
        if origin is list:
            (elem,) = typing.get_args(tp)
            return self.parse_list(elem, key)
        if origin is dict:
            _, elem = typing.get_args(tp)
            return self.parse_map(elem, key)
        if _is_struct(tp):
            start = self.lineno
            self.indent(key)
            try:
                return self.parse_struct(tp, start)
            finally:
                self.unindent()
        raise TypeError(f"unsupported sconf type {tp!r}")

    def parse_list(self, elem: Any, key: str) -> list[Any]:
        self.indent(key)
        try:
            out: list[Any] = []
            while self.next():
                s = self.line
                item_prefix = self.prefix + "-"
                if not s.startswith(item_prefix):
                    self.fail(f"expected list item for key \"{key}\" (line starting with \"-\"), saw {s!r}", key)
                s = s[len(item_prefix):]
                if s != "":
                    if not s.startswith(" "):
                        self.fail(f"missing space after - in list \"{key}\"", key)
                    s = s[1:]
                self.line = s
                out.append(self.parse_value(elem, key))
            return out
        finally:
            self.unindent()

    def _split_kv(self, kind: str) -> tuple[str, str, int]:
        orig = self.line
        s = orig[len(self.prefix):]
        k, sep, rest = s.partition(":")
        if not sep:
            more = ""
            if s.strip() == "":
                more = " (perhaps stray whitespace)"
            elif k.startswith(" "):
                more = " (perhaps mixed tab/space indenting)"
            self.fail(f"missing colon for {kind} key/value on non-empty line {orig!r}{more}")
        return k, rest, self.lineno

    def parse_struct(self, cls: type, start: int) -> Any:
        hints = _hints(cls)
        by_name = {f.name: f for f in _fields(cls)}
        values: dict[str, Any] = {}
        lines: dict[str, int] = {}
        while self.next():
            k, rest, lineno = self._split_kv("struct")
            if k == "":
                self.fail("empty key in struct")
            if k.startswith(" "):
                self.fail("key in struct starting with space (perhaps mixed tab/space indenting)", k.strip())
            if k in lines:
                self.fail(f"duplicate key \"{k}\" in struct", k)
            lines[k] = lineno
            if rest != "" and not rest.startswith(" "):
                self.fail(f"missing space after colon for key \"{k}\"", k)
            f = by_name.get(k)
            if f is None:
                more = " (perhaps stray whitespace in key)" if k.strip() != k else ""
                self.fail(f"unknown key \"{k}\"{more}", k)
            self.line = rest[1:] if rest else ""
            values[k] = self.parse_value(hints[k], k)
        for name, f in by_name.items():
            if name not in values and not is_optional(f):
                self.fail(f"missing required key \"{name}\"", name, line=start or self.lineno)
        obj = cls(**values)
        object.__setattr__(obj, _LINES_ATTR, lines)
        object.__setattr__(obj, _START_ATTR, start)
        return obj

    def parse_map(self, elem: Any, key: str) -> dict[str, Any]:
        self.indent(key)
        try:
            out: dict[str, Any] = {}
            while self.next():
                k, rest, lineno = self._split_kv("map")
                if k == "":
                    self.fail(f"empty key in map \"{key}\"", key)
                if k in out:
                    self.fail(f"duplicate key \"{k}\" in map \"{key}\"", k)
                if rest != "" and not rest.startswith(" "):
                    more = ""
                    if k.startswith(" "):
                        more = " (key starts with space, perhaps mixed tab/space indenting)"
                    self.fail(f"missing space after colon for key \"{k}\"{more}", k.strip())
                value = rest[1:] if rest else ""
                if value == "nil":
                    self.line = ""
                    out[k] = _zero(elem, lineno)
                else:
                    self.line = value
                    out[k] = self.parse_value(elem, k)
            return out
        finally:
            self.unindent()


def _zero(tp: Any, lineno: int) -> Any:
    inner, optional = _unwrap_optional(tp)
    if optional:
        return None
    if _is_struct(inner):
        obj = inner()
        object.__setattr__(obj, _LINES_ATTR, {})
        object.__setattr__(obj, _START_ATTR, lineno)
        return obj
    if inner is datetime.timedelta or inner is Duration:
        return Duration(0)
    origin = typing.get_origin(inner)
    if origin is list:
        return []
    if origin is dict:
        return {}
    return inner()


def parse(cls: type[T], text: str, path: str = "<config>") -> T:
    """Parse sconf ``text`` into an instance of dataclass ``cls``."""
    p = _Parser(path, text)
    obj = p.parse_struct(cls, 0)
    if p.next() or p.line != "":
        # Only possible with a leading-indented line at top level.
        p.fail(f"unexpected indented line {p.line!r}")
    if getattr(obj, _START_ATTR, 0) == 0:
        object.__setattr__(obj, _START_ATTR, 1)
    return obj


def parse_file(cls: type[T], path: str | Path) -> T:
    """Read and parse a file; errors name the path as given."""
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    return parse(cls, text, str(path))


# --- writer ----------------------------------------------------------------


def _wrap(text: str, width: int = 80) -> list[str]:
    """Greedy word wrap like mox's xfmt: at most ``width`` text characters."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur or not lines:
        lines.append(cur)
    return lines


def _comment(prefix: str, doc: str, optional: bool) -> str:
    sections = doc.split("\n\n\n") if doc else [""]
    if optional:
        last = sections[-1]
        sections[-1] = f"{last} (optional)" if last else "(optional)"
    out = []
    for section in sections:
        out.append("".join(f"{prefix}# {ln}".rstrip(" ") + "\n" for ln in _wrap(section)))
    return "\n\n".join(out)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.timedelta):
        return format_duration(value)
    if isinstance(value, float):
        return f"{value:f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, str):
        return value
    raise TypeError(f"cannot write value {value!r}")


class _Writer:
    def __init__(self, docs: bool) -> None:
        self.docs = docs
        self.out: list[str] = []

    def write(self, s: str) -> None:
        self.out.append(s)

    def struct(self, obj: Any, prefix: str) -> None:
        hints = _hints(type(obj))
        for f in _fields(type(obj)):
            value = getattr(obj, f.name)
            optional = is_optional(f)
            if optional and _is_zero_typed(value, hints[f.name]):
                continue
            if value is None:
                continue
            doc = field_doc(f)
            if self.docs and (doc or optional):
                if self.out:
                    self.write("\n")
                self.write(_comment(prefix, doc, optional))
            self.write(f"{prefix}{f.name}:")
            self.value(value, hints[f.name], prefix)

    def value(self, value: Any, tp: Any, prefix: str) -> None:
        tp, _ = _unwrap_optional(tp)
        origin = typing.get_origin(tp)
        if origin is list:
            (elem,) = typing.get_args(tp)
            elem, _ = _unwrap_optional(elem)
            self.write("\n")
            for item in value:
                self.write(f"{prefix}\t-")
                if _is_struct(elem):
                    self.write("\n")
                    self.struct(item, prefix + "\t\t")
                else:
                    self.value(item, elem, prefix + "\t")
            return
        if origin is dict:
            _, elem = typing.get_args(tp)
            inner, _ = _unwrap_optional(elem)
            self.write("\n")
            for k in sorted(value):
                v = value[k]
                self.write(f"{prefix}\t{k}:")
                # mox writes nil for all-optional zero structs; we also do it for
                # any all-zero struct, since e.g. an empty required list would
                # otherwise be written as a key the parser can't read back.
                if v is None or (_is_struct(inner) and is_zero(v)):
                    self.write(" nil\n")
                else:
                    self.value(v, inner, prefix + "\t")
            return
        if _is_struct(tp):
            self.write("\n")
            self.struct(value, prefix + "\t")
            return
        self.write(" " + _scalar(value) + "\n")


def write(obj: Any, docs: bool = False) -> str:
    """Serialise a dataclass instance to sconf text.

    With ``docs`` the field documentation is written as comments, the way
    mox writes freshly generated config files.
    """
    w = _Writer(docs)
    w.struct(obj, "")
    return "".join(w.out)
