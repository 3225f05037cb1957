"""Go's flag parsing and ``%q`` quoting, kept importable under their old name.

The implementations live in :mod:`core.gofmt` with moxtrio's other
Go-compatible texts; new code imports them from there.
"""

from __future__ import annotations

from core.gofmt import BOOL, STR, UsageError, go_quote, parse_flags

__all__ = ["BOOL", "STR", "UsageError", "go_quote", "parse_flags"]
