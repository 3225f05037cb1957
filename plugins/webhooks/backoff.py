"""mox's webhook retry schedule: 12 attempts over about 32 hours.

Kept apart from the message queue's backoff because the shapes differ: the
queue doubles 7.5 minutes with ±5 s jitter, webhooks walk a fixed table with
±1 % jitter.
"""

from __future__ import annotations

import random
from datetime import timedelta

#: Wait after attempt n (1-based) fails, for n = 1..11.
INTERVALS: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=4),
    timedelta(minutes=7, seconds=30),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=16),
)
#: Used when Attempts is past the table (only reachable after admin reschedules).
LAST_INTERVAL = timedelta(hours=32)
#: A hook is retired after its 12th failed attempt.
MAX_ATTEMPTS = 12

_US = timedelta(microseconds=1)


def hook_backoff(attempts_before: int, rng: random.Random) -> timedelta:
    """Backoff set when attempt ``attempts_before + 1`` starts: table value ±1 %.

    Same integer arithmetic as mox: ``b += b * (r - 100) / 10000`` with ``r``
    uniform in [0, 200), so the jitter is in [-1 %, +0.99 %].
    """
    base = INTERVALS[attempts_before] if attempts_before < len(INTERVALS) else LAST_INTERVAL
    us = base // _US
    r = rng.randrange(200)
    us += us * (r - 100) // 10000
    return timedelta(microseconds=us)
