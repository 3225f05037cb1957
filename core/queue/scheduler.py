"""The delivery loop: one trio task that sleeps until something is due.

No polling: the task computes the earliest NextAttempt among non-held
entries it could start (not in flight, domain not at its limit) and sleeps
until then (24 h when there is nothing), woken early by :meth:`kick` (new
entries, admin changes, finished deliveries, a fake clock moving).

Due entries are grouped per message (BaseID) and recipient domain into one
delivery task per group; the group's IDs are marked in flight so a second
round never starts them twice, and the claim transaction (see
:mod:`core.queue.prepare`) re-checks each entry, so a race between two
claims ends with one winner. Concurrency is bounded overall and per
recipient domain (:class:`QueueSettings`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import trio

from core.queue.clock import Clock
from core.queue.deliver import DeliverySettings
from core.store.models import from_db_time, to_db_time

log = logging.getLogger("moxtrio.queue")

IDLE_SLEEP = 24 * 3600.0
ERROR_SLEEP = 60.0


@dataclass
class QueueSettings:
    """Delivery concurrency and knobs (mox itself: 10 total, 1 per domain)."""

    max_deliveries: int = 32
    max_per_domain: int = 4
    #: Due rows looked at per scheduling round.
    due_batch: int = 1000
    delivery: DeliverySettings = field(default_factory=DeliverySettings)


DeliverGroup = Callable[[list[int], str], Awaitable[None]]


def _due_rows(
    conn: sqlite3.Connection, now: datetime, saturated: list[str], limit: int
) -> list[tuple[int, int, str]]:
    q = "SELECT id, base_id, recipient_domain_str FROM queue WHERE hold = 0 AND next_attempt <= ?"
    args: list[object] = [to_db_time(now)]
    if saturated:
        q += f" AND recipient_domain_str NOT IN ({', '.join('?' for _ in saturated)})"
        args += saturated
    q += " ORDER BY next_attempt, id LIMIT ?"
    args.append(limit)
    return [(r[0], r[1], r[2]) for r in conn.execute(q, args)]


def _earliest(conn: sqlite3.Connection, saturated: list[str], skip: set[int]) -> datetime | None:
    q = "SELECT id, next_attempt FROM queue WHERE hold = 0"
    args: list[object] = []
    if saturated:
        q += f" AND recipient_domain_str NOT IN ({', '.join('?' for _ in saturated)})"
        args += saturated
    q += " ORDER BY next_attempt, id LIMIT ?"
    args.append(len(skip) + 1)
    for rid, t in conn.execute(q, args):
        if rid not in skip:
            return from_db_time(t)
    return None


class Scheduler:
    """Picks due entries and starts delivery tasks; see the module docstring."""

    def __init__(self, store: object, clock: Clock, settings: QueueSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.inflight: set[int] = set()
        self.domain_busy: dict[str, int] = {}
        self.active = 0
        self.rounds = 0
        self._wake = trio.Event()
        #: When the sleeping loop wakes by itself; None while a round runs.
        self._wake_at: datetime | None = None

    def kick(self) -> None:
        """Re-evaluate now (safe to call from the trio thread at any time)."""
        self._wake.set()

    def kick_for(self, next_attempts: Iterable[datetime]) -> None:
        """New entries due at ``next_attempts`` (held ones left out): re-evaluate only
        if one is due before the loop wakes anyway.

        A held entry, or one due later (FutureRelease), cannot change what the
        sleeping loop does next, so adding it costs no scheduling round (two
        reads); while a round runs every kick counts.
        """
        wake_at = self._wake_at
        try:
            later = wake_at is not None and all(t >= wake_at for t in next_attempts)
        except TypeError:  # a naive time among aware ones: do not guess
            later = False
        if not later:
            self._wake.set()

    def _saturated(self) -> list[str]:
        return [d for d, n in self.domain_busy.items() if n >= self.settings.max_per_domain]

    def release(self, ids: list[int], domain: str | None = None) -> None:
        """Entries no longer in flight; with ``domain``, the group's slot is freed too."""
        self.inflight.difference_update(ids)
        if domain is not None:
            self.active -= 1
            n = self.domain_busy.get(domain, 0) - 1
            if n <= 0:
                self.domain_busy.pop(domain, None)
            else:
                self.domain_busy[domain] = n
        self.kick()

    async def _start_due(self, nursery: trio.Nursery, deliver_group: DeliverGroup) -> int:
        if self.active >= self.settings.max_deliveries:
            return 0
        now = self.clock.now()
        saturated = self._saturated()
        limit = self.settings.due_batch
        rows = await self.store.read(  # type: ignore[attr-defined]
            lambda c: _due_rows(c, now, saturated, limit)
        )
        groups: dict[tuple[int, str], list[int]] = {}
        singles: list[tuple[list[int], str]] = []
        starting: dict[str, int] = {}
        free = self.settings.max_deliveries - self.active
        for rid, base_id, domain in rows:
            if rid in self.inflight:
                continue
            if base_id and (base_id, domain) in groups:
                groups[(base_id, domain)].append(rid)
                continue
            if free <= 0:
                continue
            if (
                self.domain_busy.get(domain, 0) + starting.get(domain, 0)
                >= self.settings.max_per_domain
            ):
                continue
            starting[domain] = starting.get(domain, 0) + 1
            free -= 1
            if base_id:
                groups[(base_id, domain)] = [rid]
            else:
                singles.append(([rid], domain))
        todo = [(ids, key[1]) for key, ids in groups.items()] + singles
        for ids, domain in todo:
            self.inflight.update(ids)
            self.active += 1
            self.domain_busy[domain] = self.domain_busy.get(domain, 0) + 1
            nursery.start_soon(deliver_group, ids, domain)
        return len(todo)

    async def _next_delay(self) -> tuple[float, datetime | None]:
        """Seconds until the next entry is due, and its time when the sleep ends then."""
        if self.active >= self.settings.max_deliveries:
            return IDLE_SLEEP, None
        saturated = self._saturated()
        skip = set(self.inflight)
        t = await self.store.read(lambda c: _earliest(c, saturated, skip))  # type: ignore[attr-defined]
        if t is None:
            return IDLE_SLEEP, None
        delay = (t - self.clock.now()).total_seconds()
        if delay >= IDLE_SLEEP:
            return IDLE_SLEEP, None
        return max(delay, 0.0), t

    async def run(self, nursery: trio.Nursery, deliver_group: DeliverGroup) -> None:
        """The loop; runs until cancelled."""
        while True:
            self._wake = trio.Event()
            self._wake_at = None
            self.rounds += 1
            started = 0
            wake_at: datetime | None = None
            try:
                started = await self._start_due(nursery, deliver_group)
                delay, wake_at = await self._next_delay()
            except Exception:  # noqa: BLE001 - keep delivering after a DB hiccup
                log.exception("queue scheduler: database error, retrying in a minute")
                delay = ERROR_SLEEP
            if delay <= 0 and not started:
                # Something is due that this round could not start (a claim
                # race still settling): never spin, look again shortly.
                delay = 0.05
                wake_at = None
            if delay > 0:
                # The earliest entry's own time when that is what the loop
                # waits for: an entry added for the same moment (FutureRelease
                # in whole seconds, as applications send it) then costs no round.
                self._wake_at = wake_at or self.clock.now() + timedelta(seconds=delay)
                with trio.move_on_after(delay):
                    await self._wake.wait()
            else:
                await trio.lowlevel.checkpoint()
