"""Go-compatible durations and times, kept importable under their old name.

The implementations live in :mod:`core.gofmt`, below the queue, so that lower
layers (the admin filters in :mod:`core.sqlfilter`) use them without
importing the queue; new code imports them from there.
"""

from __future__ import annotations

from core.gofmt import (
    TimeExprError,
    format_go_duration,
    format_rfc3339,
    format_rfc3339_nano,
    parse_go_duration,
    parse_rfc3339,
    parse_time_expr,
)

__all__ = [
    "TimeExprError",
    "format_go_duration",
    "format_rfc3339",
    "format_rfc3339_nano",
    "parse_go_duration",
    "parse_rfc3339",
    "parse_time_expr",
]
