"""Localserve's simulated failures: which localparts trigger which SMTP error.

Spec 06 section 4.1. A pure function so the localserve plugin (which wires it
into MAIL/RCPT/DATA through the session handler) and its tests agree on one
decision. The reply shape is built by :func:`special_localpart_reply`.
"""

from __future__ import annotations

import re
from typing import Literal

from core.smtp.reply import Reply

# Go's strconv.Atoi: optional sign, ASCII digits only (Python's int() would
# also take "٤٥٠", " 45" and "4_5").
_GO_INT = re.compile(r"[+-]?[0-9]+")


def special_localpart_code(localpart: str) -> int | Literal["timeout"] | None:
    """The simulated outcome for ``localpart`` (case-sensitive), or None for normal delivery."""
    s = localpart
    if s.endswith("temperror"):
        return 451
    if s.endswith("permerror"):
        return 550
    if s.endswith("timeout"):
        return "timeout"
    if len(s) >= 3:
        tail = s[-3:]
        if _GO_INT.fullmatch(tail):
            v = int(tail)
            if 400 <= v <= 600:
                return v
    return None


def special_localpart_reply(code: int) -> Reply:
    """``<code> <code/100>.0.0 failure with code <code> due to special localpart`` (+ conn id)."""
    return Reply(
        code,
        f"{code // 100}.0.0",
        f"failure with code {code} due to special localpart",
        with_id=True,
    )
