"""The queue's notion of "now", injectable so tests can run the backoff schedule.

Why an object and not ``datetime.now``: the retry schedule spans 16 hours;
tests replace the clock with :class:`FakeClock`, advance it, and the
scheduler (which subscribes to changes) re-evaluates what is due at once.
Sleeps stay real trio sleeps bounded by the computed delay, so a fake clock
never makes the scheduler spin.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from core.store.models import utcnow


class Clock(Protocol):
    """Anything with ``now() -> aware UTC datetime``."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time (UTC)."""

    def now(self) -> datetime:
        return utcnow()


class FakeClock:
    """A clock that only moves when told; listeners are called on every move."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or utcnow()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._now

    def subscribe(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        for fn in list(self._listeners):
            fn()
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when
        for fn in list(self._listeners):
            fn()
