"""Localserve's simulated SMTP failures as hook verdicts, chosen by localpart as mox does.

:func:`special_localpart_code` decides which localpart means which code;
the rest of this module decides *where* it applies and shapes the
:class:`core.plugin_api.Rejection`:

* MAIL FROM: only when the sender localpart starts with ``mailfrom``;
* RCPT TO: only when the recipient localpart starts with ``rcptto``;
* after DATA: any recipient whose localpart triggers the function.

Replies read ``<code> <code/100>.0.0 failure with code <code> due to special
localpart``; the core appends the connection id. The ``timeout`` form asks
the core to stall (mox sleeps an hour) and then answer 451: ``4.3.0`` at
MAIL/RCPT and on submission, ``4.0.0`` at DATA on the delivery listener.
"""

from __future__ import annotations

import re
from typing import Literal

from core.address import parse_localpart
from moxtrio import Rejection

Stage = Literal["mailfrom", "rcptto", "data"]

TIMEOUT_TEXT = "timing out due to special localpart"

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


def localpart_of(address: str) -> str | None:
    """The (unquoted) localpart of ``localpart@domain``; None for the null sender."""
    s = address.strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1]
    raw, at, _ = s.rpartition("@")
    if not at:
        return None
    try:
        return parse_localpart(raw)
    except ValueError:
        return raw


def failure_rejection(code: int) -> Rejection:
    """The reply mox gives for a special localpart with ``code``."""
    return Rejection(
        code, f"{code // 100}.0.0", f"failure with code {code} due to special localpart"
    )


def timeout_rejection(stage: Stage, listener_kind: str) -> Rejection:
    enhanced = "4.0.0" if stage == "data" and listener_kind == "smtp" else "4.3.0"
    return Rejection(451, enhanced, TIMEOUT_TEXT, timeout=True)


def verdict(stage: Stage, listener_kind: str, address: str) -> Rejection | None:
    """The rejection for ``address`` at ``stage``, or None to let it through."""
    localpart = localpart_of(address)
    if localpart is None:
        return None
    if stage == "mailfrom" and not localpart.startswith("mailfrom"):
        return None
    if stage == "rcptto" and not localpart.startswith("rcptto"):
        return None
    outcome = special_localpart_code(localpart)
    if outcome is None:
        return None
    if outcome == "timeout":
        return timeout_rejection(stage, listener_kind)
    return failure_rejection(outcome)


def fails_at_data(address: str) -> bool:
    """Whether our own SMTP listener will fail this recipient at DATA (not at RCPT).

    Used by delivery to give such recipients their own transaction, so one
    recipient's DATA failure is never reported as delivered for the others
    (docs/differences.md, item 4).
    """
    if verdict("rcptto", "smtp", address) is not None:
        return False  # refused at RCPT already: a per-recipient reply
    return verdict("data", "smtp", address) is not None
