"""The queue's retry schedule: 7m30s doubling, ±5 s jitter.

Kept in one place so the scheduler, the admin listing and the tests agree on
the numbers: backoff = (450 s + j) × 2^(attempts before this one), with ``j``
a uniform integer in [-5, +4]; eight attempts by default; the "delayed" DSN
goes out when attempt 5 fails.
"""

from __future__ import annotations

import random
from datetime import timedelta

BASE_SECONDS = 450
JITTER_MIN = -5
JITTER_MAX = 4
DEFAULT_MAX_ATTEMPTS = 8
DELAYED_DSN_ATTEMPT = 5


def backoff(previous_attempts: int, rng: random.Random | None = None) -> timedelta:
    """Delay until the next attempt, set at the start of an attempt."""
    j = (rng or random).randint(JITTER_MIN, JITTER_MAX)
    return timedelta(seconds=(BASE_SECONDS + j) * (2 ** max(previous_attempts, 0)))


def max_attempts_of(max_attempts: int) -> int:
    """An entry's effective attempt limit (0 = the default 8)."""
    return max_attempts if max_attempts > 0 else DEFAULT_MAX_ATTEMPTS


def is_final(permanent: bool, attempts: int, max_attempts: int) -> bool:
    """Whether a failure ends delivery: permanent, or the attempt limit reached."""
    return permanent or attempts >= max_attempts_of(max_attempts)
