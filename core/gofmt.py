"""Go-compatible texts: what mox's Go code prints and parses, byte for byte.

Scripts and receivers written against mox parse these, so the forms must
match exactly. One module for all of them, below every layer that prints
(the queue, the admin filters, commands, webhooks, the webapi):

* durations: Go's ``time.ParseDuration`` syntax and ``Duration.String`` for
  whole seconds (``14m27s``, ``1h0m6s``, ``-2s``), filter expressions
  (``<-1h``, ``>90m``);
* times: RFC 3339 as mox's listings print it, Go's ``time.Time`` JSON form
  (fraction zeros trimmed, ``Z`` for UTC);
* JSON: ``encoding/json``'s bytes (compact or tab-indented, HTML escaping,
  map keys in Go's order);
* flags: command lines parsed like Go's ``flag`` package, strings quoted like
  ``%q``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

# --------------------------------------------------------------------------
# flags and quoting (Go's flag package, %q)
# --------------------------------------------------------------------------

BOOL = "bool"
STR = "str"


class UsageError(ValueError):
    """Bad command line: printed before the usage text, exit status 2 (Go's flag)."""


def parse_flags(args: list[str], spec: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Parse ``-name value``/``-name=value`` flags (``spec``: name -> BOOL|STR).

    Returns the flag values as given (booleans as "true"/"false"...) and the
    positional arguments after the flags.
    """
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name = a[2:] if a.startswith("--") else a[1:]
        if not name or name.startswith("-") or name.startswith("="):
            raise UsageError(f"bad flag syntax: {a}")
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        kind = spec.get(name)
        if kind is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if kind == BOOL:
            if value is None:
                value = "true"
            if value.lower() not in ("true", "false", "1", "0", "t", "f"):
                raise UsageError(f'invalid boolean value "{value}" for -{name}')
        elif value is None:
            i += 1
            if i >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            value = args[i]
        values[name] = value
        i += 1
    return values, args[i:]


_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(s: str) -> str:
    """Go's ``%q`` for a string: double quotes, backslash escapes, printable Unicode kept."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\x{c:02x}")
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif c < 0x10000:
            out.append(f"\\u{c:04x}")
        else:
            out.append(f"\\U{c:08x}")
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------
# durations and times
# --------------------------------------------------------------------------

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class TimeExprError(ValueError):
    """A duration or filter time expression that does not parse."""


def parse_go_duration(s: str) -> timedelta:
    """Parse a Go duration (``1h30m``, ``-2h``, ``90s``, ``0``)."""
    text = s.strip()
    orig = text
    neg = False
    if text[:1] in "+-" and text:
        neg = text[0] == "-"
        text = text[1:]
    if text == "0":
        return timedelta(0)
    if not text:
        raise TimeExprError(f'time: invalid duration "{orig}"')
    pos = 0
    total = 0.0
    while pos < len(text):
        m = _PART.match(text, pos)
        if m is None:
            raise TimeExprError(f'time: invalid duration "{orig}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return timedelta(seconds=-total if neg else total)


def _frac(v: int, prec: int) -> tuple[str, int]:
    digits = ""
    printed = False
    for _ in range(prec):
        digit = v % 10
        printed = printed or digit != 0
        if printed:
            digits = str(digit) + digits
        v //= 10
    return ("." + digits if printed else ""), v


def format_duration_ns(ns: int) -> str:
    """Go's ``time.Duration.String`` for nanoseconds (``72h0m0s``, ``1ns``, ``1.5s``)."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        if u < 1000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            frac, whole = _frac(u, 3)
            return f"{sign}{whole}{frac}\u00b5s"
        frac, whole = _frac(u, 6)
        return f"{sign}{whole}{frac}ms"
    frac, secs = _frac(u, 9)
    out = f"{secs % 60}{frac}s"
    mins = secs // 60
    if mins > 0:
        out = f"{mins % 60}m" + out
        hours = mins // 60
        if hours > 0:
            out = f"{hours}h" + out
    return sign + out


def format_go_duration(d: timedelta) -> str:
    """Go's Duration.String for a duration rounded to whole seconds."""
    return format_duration_ns(round(d.total_seconds()) * 1_000_000_000)


def format_go_time_seconds(dt: datetime) -> str:
    """Go's ``t.Round(time.Second).String()`` for a UTC time, as mox's CLI prints it.

    ``2026-11-23 23:59:16 +0000 UTC``; halfway values round up, as Go does.
    """
    u = dt.astimezone(UTC)
    whole = u.replace(microsecond=0)
    if u.microsecond >= 500_000:
        whole += timedelta(seconds=1)
    return whole.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def parse_time_expr(expr: str, now: datetime) -> tuple[str, datetime]:
    """A filter time expression: ``<``/``>``, optional spaces, ``now`` or a duration.

    Returns (``"<"`` or ``">"``, reference time = now + duration).
    """
    if not expr or expr[0] not in "<>":
        raise TimeExprError('must start with "<" for before or ">" for after a duration')
    op = expr[0]
    rest = expr[1:].strip()
    if rest == "now":
        return op, now
    return op, now + parse_go_duration(rest)


def format_rfc3339(dt: datetime) -> str:
    """RFC 3339 in UTC, no fraction (``2026-11-24T00:00:31Z``), as mox's list output."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_rfc3339_nano(dt: datetime | None) -> str | None:
    """Go's time JSON form: RFC 3339 with up to 9 fraction digits, zeros trimmed."""
    if dt is None:
        return None
    u = dt.astimezone(UTC)
    base = u.strftime("%Y-%m-%dT%H:%M:%S")
    if u.microsecond:
        base += "." + f"{u.microsecond:06d}".rstrip("0")
    return base + "Z"


def parse_rfc3339(s: str) -> datetime:
    """RFC 3339 with or without fraction (keyset pagination ``Last`` values)."""
    text = s.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if m and m.group(2):
        frac = m.group(2)[1:7].ljust(6, "0")
        text = f"{m.group(1)}.{frac}{m.group(3)}"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimeExprError(f"parsing time {s!r}: {exc}") from exc
    if dt.tzinfo is None:
        raise TimeExprError(f"parsing time {s!r}: missing time zone")
    return dt.astimezone(UTC)


def format_json_time(t: datetime | None) -> str | None:
    """:func:`format_go_time`, with None for a nil time (JSON ``null``)."""
    return None if t is None else format_go_time(t)


def format_go_time(t: datetime) -> str:
    """Go's time.Time JSON form: RFC 3339, up to 9 fraction digits trimmed, ``Z`` for UTC.

    Years are always four digits (``0001-01-01T00:00:00Z`` for Go's zero
    time). A naive datetime is taken as local time.
    """
    if t.tzinfo is None:
        t = t.astimezone()
    s = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if t.microsecond:
        s += "." + f"{t.microsecond:06d}".rstrip("0")
    off = t.utcoffset() or timedelta(0)
    if off == timedelta(0):
        return s + "Z"
    secs = int(off.total_seconds())
    sign = "+" if secs >= 0 else "-"
    secs = abs(secs)
    return f"{s}{sign}{secs // 3600:02d}:{secs % 3600 // 60:02d}"


# --------------------------------------------------------------------------
# JSON (encoding/json)
# --------------------------------------------------------------------------

_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _escape_html(text: str) -> str:
    # These characters only occur inside JSON strings (never in the syntax).
    for ch, esc in _HTML.items():
        if ch in text:
            text = text.replace(ch, esc)
    return text


def _clean(obj: Any) -> Any:
    """Replace lone surrogates (undecodable input) like Go replaces invalid UTF-8."""
    if isinstance(obj, str):
        return obj.encode("utf-8", "replace").decode("utf-8")
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def marshal(obj: Any) -> str:
    """Go ``json.Marshal``: compact, HTML-escaped, no trailing newline."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(_clean(obj), ensure_ascii=False, separators=(",", ":"))
    return _escape_html(text)


def marshal_indent(obj: Any) -> str:
    """Go ``json.Encoder`` with ``SetIndent("", "\\t")``: tab-indented plus a newline."""
    text = json.dumps(_clean(obj), ensure_ascii=False, indent="\t")
    return _escape_html(text) + "\n"


def sorted_map(m: dict[str, str] | None) -> dict[str, str] | None:
    """A Go map as it is marshalled: keys in byte order; nil stays null."""
    if m is None:
        return None
    return {k: m[k] for k in sorted(m, key=lambda s: s.encode("utf-8", "replace"))}
