"""Go-compatible time texts the queue's CLI and JSON use.

mox prints durations with Go's ``time.Duration.String`` (``14m27s``,
``1h0m6s``, ``-2s``), accepts Go durations in filters (``<-1h``, ``>90m``)
and writes times as RFC 3339 with trailing fraction zeros trimmed. Scripts
parse these, so the forms must match exactly.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

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


def format_go_duration(d: timedelta) -> str:
    """Go's Duration.String for a duration rounded to whole seconds."""
    secs = round(d.total_seconds())
    if secs == 0:
        return "0s"
    sign = "-" if secs < 0 else ""
    secs = abs(secs)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


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
