"""Localserve's simulated delivery scenarios beyond SMTP error codes (a moxtrio extension).

Recipient localparts ending in:

* ``tempthenok``: the first attempt fails temporarily (451), the next one
  is delivered (events ``delayed``, then ``delivered``);
* ``delay<N>`` (N seconds, at most :data:`MAX_DELAY`): delivery waits N
  seconds, then succeeds (``delivered`` after N s);
* ``complaint``: delivered, then a spam complaint (an RFC 5965 abuse report)
  about the message arrives (``delivered``, then ``complaint``);
* ``latebounce``: delivered, then a DSN reporting a permanent failure
  arrives, as remote systems that accept first and bounce later do
  (``delivered``, then ``failed`` with ``DSN: true``).

The first attempt of a ``tempthenok`` recipient is answered here without
an SMTP transaction (our own listener cannot know which attempt it sees);
delays wait before the transaction; complaints and late bounces are real
messages sent to our own SMTP listener afterwards
(:mod:`plugins.localserve.followups`), so they take the same path as
reports from the internet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from moxtrio import RecipientResult
from plugins.localserve.simulate import localpart_of

#: Longest simulated delay: it is spent inside the delivery hook, whose time
#: limit (several minutes, see ``settings.delivery_time_limit``) must still
#: cover the transaction after it.
MAX_DELAY = 60
_DELAY = re.compile(r"delay([0-9]{1,6})$")

Kind = Literal["tempthenok", "delay", "complaint", "latebounce"]
TEMP_TEXT = "failure with code 451 due to special localpart, next attempt succeeds"


@dataclass(frozen=True)
class Scenario:
    kind: Kind
    seconds: int = 0


def scenario_of(address: str) -> Scenario | None:
    """The scenario a recipient address asks for, or None."""
    lp = localpart_of(address)
    if lp is None:
        return None
    for kind in ("tempthenok", "complaint", "latebounce"):
        if lp.endswith(kind):
            return Scenario(kind)  # type: ignore[arg-type]
    m = _DELAY.search(lp)
    if m is not None:
        return Scenario("delay", min(int(m.group(1)), MAX_DELAY))
    return None


def first_attempt_failure(address: str) -> RecipientResult:
    """The simulated temporary failure of a ``tempthenok`` recipient's first attempt."""
    return RecipientResult(
        recipient=address,
        ok=False,
        permanent=False,
        code=451,
        secode="0.0",
        line=f"451 4.0.0 {TEMP_TEXT}",
        error=f"simulated temporary failure: 451 4.0.0 {TEMP_TEXT}",
    )
